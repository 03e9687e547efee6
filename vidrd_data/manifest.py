"""Manifest and recipe schemas (pydantic), validated before any work.

A manifest says what to build (output, clip spec, shard size, sources, models, Ray); each source names a
recipe (the ordered stages and their parameters) by name (`recipe: image_text`: one of the recipes shipped
in `vidrd_data/recipes/`) or by path, and may override parameters per stage. Every error names the file,
the field path, the bad value and what is allowed. Stage names, parameters and chains are checked by
`vidrd_data.plan_check`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"  # shipped as package data
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


class ManifestError(ValueError):
    """A manifest or recipe problem, found before any work started."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClipSpec(_Strict):
    fps: float = Field(8.0, gt=0, le=240)
    size: tuple[int, int] = (256, 256)  # [width, height]
    frames: int | None = Field(16, ge=1, le=4096)
    min_seconds: float | None = Field(None, gt=0)
    max_seconds: float | None = Field(None, gt=0)

    @field_validator("size")
    @classmethod
    def _even(cls, v: tuple[int, int]) -> tuple[int, int]:
        if any(d <= 0 or d % 2 for d in v):
            raise ValueError(f"size must be two positive even integers [width, height] (H.264 yuv420p), got {list(v)}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _frames_or_duration(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("min_seconds" in data or "max_seconds" in data):
            if data.get("frames") is not None:
                raise ValueError("give either frames (exact clip length) or min_seconds/max_seconds (whole segments), not both")
            data = {**data, "frames": None}
        return data

    @model_validator(mode="after")
    def _bounds(self) -> "ClipSpec":
        if self.frames is None and (self.min_seconds or 0) > (self.max_seconds or float("inf")):
            raise ValueError(f"min_seconds {self.min_seconds} > max_seconds {self.max_seconds}")
        return self

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]


class ShardSpec(_Strict):
    max_samples: int = Field(1000, ge=1)


class RaySpec(_Strict):
    address: str | None = None  # None: embedded Ray; "auto" or "ray://host:10001": join a cluster
    num_cpus: int | None = Field(None, ge=1)  # embedded Ray only; default all cores
    object_store_mb: int = Field(512, ge=64)  # embedded Ray only: cap the object store
    max_failed_fraction: float = Field(1.0, ge=0, le=1)  # exit non-zero above this fraction of failed inputs


class ModelSpec(BaseModel):
    """A model setting: `path` (hub id looked up in the local cache, or a local dir) or `name` + `checkpoint`."""
    model_config = ConfigDict(extra="allow")
    path: str | None = None
    name: str | None = None
    checkpoint: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    batch_size: int = Field(8, ge=1)
    num_actors: int = Field(1, ge=1)


class StageSpec(_Strict):
    stage: str
    params: dict[str, Any] = Field(default_factory=dict)


class Recipe(_Strict):
    kind: Literal["image_text", "short_video", "long_video"]
    description: str | None = None
    max_outputs_per_input: int = Field(1, ge=1)  # sizes shards: inputs per shard = max_samples // this
    items_per_task: int = Field(1, ge=1)  # inputs per Ray task (per block): >1 amortises overhead for light inputs
    stages: list[StageSpec] = Field(min_length=1)


class SourceSpec(_Strict):
    name: str
    kind: Literal["image_text", "short_video", "long_video"]
    recipe: str | None = None  # a shipped recipe's name (image_text) or a YAML path; default: the kind's name
    input: dict[str, Any]
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    weight: float | None = Field(None, gt=0)  # recorded for the trainer's source mixing
    limit: int | None = Field(None, ge=0)  # take at most this many inputs (deterministic: the first N)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"source name must match [a-z0-9][a-z0-9_]* (it starts every key and shard name), got {v!r}")
        return v

    @field_validator("input")
    @classmethod
    def _has_format(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "format" not in v:
            raise ValueError("input needs a 'format' (e.g. folder, webdataset, table, class_folders, list)")
        return v


class Manifest(_Strict):
    name: str
    output: str
    clip: ClipSpec = Field(default_factory=ClipSpec)
    shard: ShardSpec = Field(default_factory=ShardSpec)
    ray: RaySpec = Field(default_factory=RaySpec)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    sources: list[SourceSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_sources(self) -> "Manifest":
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique, repeated: {dup}")
        return self


def _format_errors(where: str, exc: ValidationError, prefix: str = "") -> str:
    lines = [f"{where}: invalid"]
    for err in exc.errors():
        loc = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        msg = err["msg"].removeprefix("Value error, ")
        bad = err.get("input")
        shown = json.dumps(bad, default=str)[:80] if bad is not None and err["type"] != "missing" else None
        extra = ""
        if err["type"] == "literal_error":
            extra = f" (allowed: {err.get('ctx', {}).get('expected')})"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"  {loc}: {msg}{extra}" + (f"; got {shown}" if shown else ""))
    return "\n".join(lines)


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(f"{path}: file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def shipped_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def _with_derived_params(stages: list[StageSpec], clip: dict[str, Any]) -> list[StageSpec]:
    """Each stage's params plus the defaults it derives from its recipe's other stages (Stage.derived_params);
    what the recipe or manifest set is kept. Unknown stages are left for plan_check to report."""
    from vidrd_data.stages.base import get_stage

    by_name = {s.stage: dict(s.params) for s in stages}
    out = []
    for s in stages:
        try:
            cls = get_stage(s.stage)
        except KeyError:
            out.append(s)
            continue
        derived = {k: v for k, v in cls.derived_params(s.params, by_name, clip).items() if s.params.get(k) is None}
        out.append(s.model_copy(update={"params": {**s.params, **derived}}) if derived else s)
    return out


def find_recipe(ref: str, manifest_path: Path) -> Path:
    """A recipe by name (`image_text`: shipped with the package) or by path: absolute, or relative to the
    working dir, the manifest's dir or its parent. A path into a `pipelines/` folder that is not there (an
    installed copy, a manifest moved away from the repo) falls back to the shipped recipe of that name."""
    p = Path(ref).expanduser()
    if p.suffix not in (".yaml", ".yml") and len(p.parts) == 1:  # a name
        candidates = [RECIPES_DIR / f"{ref}.yaml"]
    elif p.is_absolute():
        candidates = [p]
    else:
        candidates = [Path.cwd() / p, manifest_path.parent / p, manifest_path.parent.parent / p]
        if p.parent.name == "pipelines":
            candidates.append(RECIPES_DIR / p.name)
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise ManifestError(f"{manifest_path}: recipe {ref!r} not found (looked in: {', '.join(str(c) for c in candidates)}); "
                        f"shipped recipes, usable by name: {', '.join(shipped_recipes())}")


def load_recipe(path: Path) -> Recipe:
    data = _read_yaml(path)
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(_format_errors(str(path), exc)) from None


class ResolvedSource(BaseModel):
    spec: SourceSpec
    recipe_path: str
    recipe: Recipe  # with the manifest's overrides merged in

    def stage_params(self) -> list[tuple[str, dict[str, Any]]]:
        return [(s.stage, s.params) for s in self.recipe.stages]


class ResolvedManifest(BaseModel):
    path: str
    manifest: Manifest
    sources: list[ResolvedSource]

    def as_dict(self) -> dict[str, Any]:
        return {"manifest": self.manifest.model_dump(mode="json"),
                "recipes": {s.spec.name: s.recipe.model_dump(mode="json") for s in self.sources}}

    def config_hash(self) -> str:
        blob = json.dumps(self.as_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def load_manifest(path: str | Path, *, output: str | None = None) -> ResolvedManifest:
    """Read, validate and resolve a manifest (recipes, overrides, reader inputs). `output` overrides the
    manifest's output (`vidrd-data build --output`)."""
    path = Path(path).resolve()
    data = _read_yaml(path)
    if output:
        data["output"] = output
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(_format_errors(str(path), exc)) from None

    from vidrd_data.sources.base import get_reader

    resolved = []
    for i, src in enumerate(manifest.sources):
        where = f"{path}: sources[{i}] ({src.name})"
        recipe_path = find_recipe(src.recipe or src.kind, path)
        recipe = load_recipe(recipe_path)
        if recipe.kind != src.kind:
            raise ManifestError(f"{where}: recipe {recipe_path.name} is for kind {recipe.kind!r}, the source is {src.kind!r}")
        stage_names = [s.stage for s in recipe.stages]
        for name in src.overrides:
            if name not in stage_names:
                raise ManifestError(f"{where}.overrides: no stage {name!r} in {recipe_path.name}; stages: {stage_names}")
        stages = [StageSpec(stage=s.stage, params={**s.params, **src.overrides.get(s.stage, {})}) for s in recipe.stages]
        stages = _with_derived_params(stages, manifest.clip.model_dump(mode="json"))
        recipe = recipe.model_copy(update={"stages": stages})
        try:
            reader_cls = get_reader(src.kind, src.input["format"])
        except KeyError as exc:
            raise ManifestError(f"{where}.input.format: {exc.args[0]}") from None
        try:
            reader_cls.Params.model_validate(src.input)
        except ValidationError as exc:
            raise ManifestError(_format_errors(str(path), exc, prefix=f"sources[{i}].input.")) from None
        resolved.append(ResolvedSource(spec=src, recipe_path=str(recipe_path), recipe=recipe))
    return ResolvedManifest(path=str(path), manifest=manifest, sources=resolved)
