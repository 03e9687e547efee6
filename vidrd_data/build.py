"""`vidrd-data build`: validate, plan, run the stages on Ray, commit shards.

Everything that can be wrong with the manifest, the recipes, the inputs' roots or the models is found
before any work (`prepare`); then each source streams through its Ray Data pipeline into the sink.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from vidrd_data import __version__
from vidrd_data.items import FAILED, Item
from vidrd_data.manifest import ManifestError, ResolvedManifest, load_manifest
from vidrd_data.plan_check import check_plan
from vidrd_data.runtime import StepPlan, build_dataset, configure_data_context, init_ray, plan_steps
from vidrd_data.sink import CommittedState, ShardPlan, ShardSink, plan_shards, scan_committed, write_dataset_info
from vidrd_data.sources.base import get_reader
from vidrd_data.stages.base import StageContext


@dataclass
class SourcePlan:
    name: str
    kind: str
    fmt: str
    total: int
    committed: int
    pending: list[Item]
    steps: list[StepPlan]
    shards: list[ShardPlan]
    retried: int = 0
    items_per_task: int = 1


@dataclass
class BuildReport:
    output: str
    counts: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)  # reason -> count (this run)
    shards: list[str] = field(default_factory=list)
    seconds: float = 0.0
    first_commit_seconds: float | None = None
    inputs: int = 0
    failed_inputs: int = 0
    duplicates: int = 0  # items re-emitted by retried Ray tasks and dropped by the sink (exactly-once output)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_fraction(self) -> float:
        return self.failed_inputs / self.inputs if self.inputs else 0.0


def _output_path(output: str) -> str:
    if "://" not in output:
        return str(Path(output).expanduser().resolve())
    import fsspec

    try:  # before any work: a missing fsspec backend is a set-up error, not a crash at the first commit
        fsspec.core.url_to_fs(output)
    except ImportError as exc:
        extra = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}.get(output.split("://")[0])
        hint = f"pip install 'vidrd[{extra}]'" if extra else "install the fsspec backend for this protocol"
        raise ManifestError(f"output {output}: {exc} ({hint}; only the driver writes the output)") from None
    return output


def make_context(resolved: ResolvedManifest) -> StageContext:
    m = resolved.manifest
    return StageContext(clip=m.clip.model_dump(mode="json"),
                        models={k: v.model_dump(mode="json") for k, v in m.models.items()},
                        base_dir=str(Path.cwd()), config_hash=resolved.config_hash(), package_version=__version__)


def plan_sources(resolved: ResolvedManifest, ctx: StageContext, committed: CommittedState, *,
                 retry_failed: bool = False, max_items: int | None = None) -> list[SourcePlan]:
    m = resolved.manifest
    plans = []
    for i, src in enumerate(resolved.sources):
        spec = src.spec
        where = f"{resolved.path}: sources[{i}] ({spec.name})"
        reader_cls = get_reader(spec.kind, spec.input["format"])
        reader = reader_cls(spec.name, reader_cls.Params.model_validate(spec.input), Path(ctx.base_dir))
        try:
            reader.check()
        except (OSError, ValueError) as exc:
            raise ManifestError(f"{where}.input: {exc}") from None
        try:
            steps = plan_steps(src.stage_params(), ctx, ctx.models)
        except (ValueError, FileNotFoundError, KeyError) as exc:
            raise ManifestError(f"{where} ({Path(src.recipe_path).name}): {exc}") from None
        try:
            items = reader.list_items()
        except (OSError, ValueError) as exc:
            raise ManifestError(f"{where}.input: {exc}") from None
        if spec.limit is not None:
            items = items[: spec.limit]
        done = committed.inputs.get(spec.name, set())
        retry = committed.failed_inputs(spec.name) if retry_failed else set()
        pending = [it for it in items if it.input_id not in done or it.input_id in retry]
        if max_items is not None:
            pending = pending[:max_items]
        per_shard = max(1, m.shard.max_samples // src.recipe.max_outputs_per_input)
        shards = plan_shards(spec.name, [it.input_id for it in pending], per_shard, committed.next_index[spec.name])
        plans.append(SourcePlan(spec.name, spec.kind, spec.input["format"], len(items),
                                len([it for it in items if it.input_id in done]), pending, steps, shards,
                                retried=len([it for it in pending if it.input_id in retry]),
                                items_per_task=src.recipe.items_per_task))
    return plans


def print_plan(resolved: ResolvedManifest, plans: list[SourcePlan], resources: dict, output: str, removed: list[str],
               out: Callable[[str], None], address: str | None = None) -> None:
    from vidrd_data.cluster import actor_starvation, node_table, placement

    m = resolved.manifest
    clip = m.clip
    length = f"{clip.frames} frames" if clip.frames else f"{clip.min_seconds}-{clip.max_seconds} s"
    out(f"vidrd-data build: {m.name}  (config {resolved.config_hash()})")
    out(f"  output   {output}")
    out(f"  clip     {clip.size[0]}x{clip.size[1]} @ {clip.fps:g} fps, {length}; shards of <= {m.shard.max_samples} samples")
    gpus = resources.get("GPU", 0)
    nodes = node_table()  # node:IP resource keys undercount: several nodes may share an IP
    out(f"  ray      {address or 'embedded'}: {resources.get('CPU', 0):g} CPU, {gpus:g} GPU, {len(nodes)} node(s)")
    if removed:
        out(f"  resume   removed {len(removed)} leftover file(s) of uncommitted shards (they are rebuilt)")
    for p in plans:
        extra = f", {p.retried} failed to retry" if p.retried else ""
        out(f"  source   {p.name} [{p.kind}/{p.fmt}]: {p.total} inputs, {p.committed} committed, "
            f"{len(p.pending)} to do{extra} -> {len(p.shards)} shard(s)")
        starving = actor_starvation(p.steps, nodes)
        if starving:
            out(f"  warning  {p.name}: {starving}")
        for s in p.steps:
            where, fits = placement(s.resources.num_cpus, s.resources.num_gpus, nodes)
            out(f"             {s.describe()}  {where}")
            if not fits and not address:
                names = " + ".join(n for n, _ in s.stages)
                raise ManifestError(f"stage {names} needs {s.resources.num_gpus:g} GPU / {s.resources.num_cpus:g} CPU "
                                    f"per worker, more than embedded Ray has: run it on a cluster with such a node "
                                    f"(--ray-address) or set the model's device: cpu")


def build(manifest_path: str | Path, *, ray_address: str | None = None, resume: bool = True,
          retry_failed: bool = False, max_items: int | None = None, progress: bool = True,
          out: Callable[[str], None] = print, output: str | None = None) -> BuildReport:
    t0 = time.time()
    resolved = load_manifest(manifest_path, output=output)
    m = resolved.manifest
    output = _output_path(m.output)
    ctx = make_context(resolved)
    check_plan(resolved, ctx)  # every recipe chain and stage parameter, before Ray starts
    address = ray_address if ray_address is not None else m.ray.address
    resources = init_ray(address, m.ray.num_cpus, m.ray.object_store_mb)
    configure_data_context()
    if not resume:
        import fsspec

        fs, root = fsspec.core.url_to_fs(output)
        if fs.exists(f"{root}/shards"):
            fs.rm(f"{root}/shards", recursive=True)
    committed = scan_committed(output)
    plans = plan_sources(resolved, ctx, committed, retry_failed=retry_failed, max_items=max_items)
    print_plan(resolved, plans, resources, output, committed.removed, out, address=address or os.environ.get("RAY_ADDRESS"))

    report = BuildReport(output=output)
    total = sum(len(p.pending) for p in plans)
    bar = tqdm(total=total, unit="input", desc="building", disable=not progress or total == 0, file=sys.stderr)

    def on_commit(plan: ShardPlan, counts: Counter) -> None:
        if report.first_commit_seconds is None:
            report.first_commit_seconds = time.time() - t0
        report.shards.append(plan.name)
        bar.set_postfix_str(f"shards {len(report.shards)}, ok {report.counts['success'] + counts['success']}")

    all_shards = [s for p in plans for s in p.shards]
    sink = ShardSink(output, all_shards, committed, __version__, ctx.config_hash, on_commit=on_commit,
                     on_input_done=lambda: bar.update(1))
    for p in plans:
        ready = [it for it in p.pending if not it.alive]  # failed while listing: straight to the sink
        live = [it for it in p.pending if it.alive]
        for it in ready:
            sink.add(it)
        if live:
            ds = build_dataset(live, p.steps, ctx, p.items_per_task)
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
                for blob in batch["item"]:
                    sink.add(_load(blob))
    sink.finish()
    bar.close()
    report.counts = sink.stats
    report.duplicates = sink.duplicates
    for reason, n in sink.failure_reasons.items():
        report.failures[reason] = n
    report.inputs = total
    report.failed_inputs = len(sink.failed_inputs)
    report.info = write_dataset_info(output, resolved.as_dict(), __version__, ctx.config_hash,
                                     {"last_build": {"seconds": round(time.time() - t0, 3), "inputs": total,
                                                     "counts": dict(report.counts)}})
    report.seconds = time.time() - t0
    _print_summary(report, out)
    return report


def _load(blob: bytes) -> Item:
    from vidrd_data.items import from_row

    return from_row({"item": blob})


def _print_summary(report: BuildReport, out: Callable[[str], None]) -> None:
    c = report.counts
    out(f"done in {report.seconds:.1f} s: {c.get('success', 0)} success, {c.get('filtered', 0)} filtered, "
        f"{c.get('failed', 0)} failed; {len(report.shards)} shard(s) committed -> {report.output}")
    if report.duplicates:
        out(f"  {report.duplicates} item(s) re-emitted by retried Ray tasks were dropped (each written once)")
    if report.failures:
        out("failures and filters by reason:")
        for reason, n in report.failures.most_common(20):
            out(f"  {n:5d}  {reason}")


__all__ = ["build", "BuildReport", "FAILED"]
