"""The plan check: every recipe's stage chain and every stage parameter, validated in one place before Ray
starts (`vidrd-data build` and `vidrd-data plan` both call `check_plan`).

For each source: each stage name must be registered; its parameters (recipe + the manifest's overrides)
must fit the stage's `Params` and its `check` (context: clip spec, models present on disk); and every item
key a stage `requires` must be provided upstream, by the source's reader (per input format) or an earlier
stage, up to the shard writer, which needs `SINK_REQUIRES`. Errors name the manifest, the source, the
recipe, the stage (and its index) and the parameter or key, and say what is allowed or which stage
provides the missing key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vidrd_data.manifest import ManifestError, ResolvedManifest, ResolvedSource
from vidrd_data.stages.base import STAGES, Stage, StageContext, get_stage

SINK_REQUIRES = ("mp4", "jpg", "caption")  # what the shard writer takes from every successful item
READER_DEFAULT_PROVIDES = ("path",)  # a reader that declares nothing hands on a file path


class PlanError(ManifestError):
    """A recipe chain or a stage parameter is wrong; found before any work."""


@dataclass
class CheckedStage:
    name: str
    params: dict[str, Any]  # as given (recipe + overrides); the stage fills in its own defaults
    stage_cls: type[Stage]
    requires: tuple[str | tuple[str, ...], ...]
    provides: tuple[str, ...]


@dataclass
class CheckedSource:
    name: str
    reader_keys: tuple[str, ...]
    stages: list[CheckedStage] = field(default_factory=list)


def _key_text(req: str | tuple[str, ...]) -> str:
    return repr(req) if isinstance(req, str) else " or ".join(repr(k) for k in req)


def _providers(req: str | tuple[str, ...]) -> list[str]:
    keys = {req} if isinstance(req, str) else set(req)
    return sorted(n for n, c in STAGES.items() if keys & set(c.provides))


def _format_params_error(where: str, exc: ValidationError, cls: type[Stage]) -> str:
    allowed = ", ".join(cls.Params.model_fields)
    lines = [f"{where}: invalid params"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"  {loc}: unknown parameter; allowed: {allowed}")
        else:
            lines.append(f"  {loc}: {err['msg'].removeprefix('Value error, ')}; got {err.get('input')!r}"[:300])
    return "\n".join(lines)


def check_chain(where: str, reader_keys: tuple[str, ...], stages: list[CheckedStage]) -> None:
    """Every key a stage requires is provided by the reader or an earlier stage; the sink's keys at the end."""
    have = set(reader_keys)
    for i, st in enumerate(stages):
        for req in st.requires:
            options = (req,) if isinstance(req, str) else req
            if not have & set(options):
                by = ", ".join(_providers(req)) or "no registered stage"
                raise PlanError(f"{where}: stage {st.name} (stages[{i}]) requires item key {_key_text(req)}, which "
                                f"neither the reader nor an earlier stage provides (provided by: {by}); add such a "
                                f"stage before {st.name}. Available here: {sorted(have)}")
        have |= set(st.provides)
    for key in SINK_REQUIRES:
        if key not in have:
            raise PlanError(f"{where}: the shard writer requires item key {key!r}, which no stage of the recipe "
                            f"provides (provided by: {', '.join(_providers(key))}); add such a stage at the end")


def check_source(manifest_path: str, index: int, src: ResolvedSource, ctx: StageContext) -> CheckedSource:
    from vidrd_data.sources.base import get_reader

    spec = src.spec
    recipe = Path(src.recipe_path).name
    where = f"{manifest_path}: sources[{index}] ({spec.name}), recipe {recipe}"
    reader_cls = get_reader(spec.kind, spec.input["format"])
    reader_keys = tuple(getattr(reader_cls, "provides", READER_DEFAULT_PROVIDES))
    checked = CheckedSource(spec.name, reader_keys)
    for i, (name, params) in enumerate(src.stage_params()):
        stage_where = f"{where}: stage {name} (stages[{i}])"
        try:
            cls = get_stage(name)
        except KeyError as exc:
            raise PlanError(f"{stage_where}: {exc.args[0]}") from None
        try:
            cls.validate(params, ctx)
        except ValidationError as exc:
            raise PlanError(_format_params_error(stage_where, exc, cls)) from None
        except (ValueError, FileNotFoundError, KeyError) as exc:
            raise PlanError(f"{stage_where}: {exc}") from None
        checked.stages.append(CheckedStage(name, dict(params), cls, cls.requires, cls.provides))
    check_chain(where, reader_keys, checked.stages)
    return checked


def check_plan(resolved: ResolvedManifest, ctx: StageContext) -> list[CheckedSource]:
    """All sources' chains and parameters; raises PlanError (a ManifestError) at the first problem."""
    return [check_source(resolved.path, i, src, ctx) for i, src in enumerate(resolved.sources)]


def count_inputs(resolved: ResolvedManifest, ctx: StageContext) -> list[int | None]:
    """Per source: its inputs' root checked, and their number (None where the reader cannot tell cheaply)."""
    from vidrd_data.sources.base import get_reader

    counts: list[int | None] = []
    for i, src in enumerate(resolved.sources):
        spec = src.spec
        reader_cls = get_reader(spec.kind, spec.input["format"])
        reader = reader_cls(spec.name, reader_cls.Params.model_validate(spec.input), Path(ctx.base_dir))
        try:
            if hasattr(reader, "partitions"):  # partitioned readers: sizes without expanding the inputs
                reader.plan()
                sizes = [part.size for part in reader.partitions()]
                n = None if any(s is None for s in sizes) else sum(sizes)
            else:
                reader.check()
                n = len(reader.list_items())
        except (OSError, ValueError) as exc:
            raise PlanError(f"{resolved.path}: sources[{i}] ({spec.name}).input: {exc}") from None
        counts.append(n if spec.limit is None or n is None else min(n, spec.limit))
    return counts


def describe_plan(checked: list[CheckedSource], resolved: ResolvedManifest,
                  counts: list[int | None] | None = None) -> list[str]:
    """The checked plan as lines: per source its reader keys, then each stage with what it reads and adds."""
    lines = []
    for i, (src, cs) in enumerate(zip(resolved.sources, checked)):
        s = src.spec
        n = "" if counts is None else f"{'?' if counts[i] is None else counts[i]} inputs, "
        lines.append(f"  source   {s.name} [{s.kind}/{s.input['format']}]: {n}recipe {src.recipe_path}")
        lines.append(f"             reader provides {', '.join(cs.reader_keys)}")
        for st in cs.stages:
            kind = "model actor pool" if st.stage_cls.uses_model else "CPU task"
            needs = ", ".join(_key_text(r) for r in st.requires) or "-"
            params = ", ".join(f"{k}={v}" for k, v in st.params.items() if not isinstance(v, (dict, list)))
            lines.append(f"             {st.name:<16} [{kind}] reads {needs} -> adds {', '.join(st.provides) or '-'}"
                         + (f"  ({params})" if params else ""))
    return lines
