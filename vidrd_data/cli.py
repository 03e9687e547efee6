"""`vidrd-data`: build text-to-video shards (build), see a build's plan without running it (plan), look at
a built output (inspect), manage models (models ...)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from vidrd_data.operator_errors import EXIT_INTERRUPTED, EXIT_OS_ERROR, find_os_error, one_line

MODEL_COMMANDS = {"convert-minigpt4": "vidrd_data.models.convert_minigpt4"}


def _cmd_build(args) -> int:
    from vidrd_data.build import build
    from vidrd_data.manifest import ManifestError

    if args.quiet:
        quiet_ray()
    try:
        report = build(args.manifest, ray_address=args.ray_address, resume=not args.no_resume,
                       retry_failed=args.retry_failed, max_items=args.max_items, progress=not args.quiet,
                       force=args.force, output=args.output)
        logs = ray_log_dir()
        if logs:
            print(f"  ray logs {logs}")
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - an operating-system error is the operator's to fix: one line, exit 4
        err = find_os_error(exc)
        if err is None:
            raise  # anything else is a bug: its traceback (exit 1)
        print(one_line(err, args.output or _manifest_output(args.manifest)), file=sys.stderr)
        return EXIT_OS_ERROR
    except KeyboardInterrupt:
        print("interrupted: committed shards are intact; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        from vidrd_common.ray_session import shutdown_ray

        shutdown_ray()
    limit = args.max_failed_fraction if args.max_failed_fraction is not None else \
        report.info.get("resolved", {}).get("manifest", {}).get("ray", {}).get("max_failed_fraction", 1.0)
    if report.failed_fraction > limit:
        print(f"error: {report.failed_inputs}/{report.inputs} inputs failed ({report.failed_fraction:.1%}), "
              f"above max_failed_fraction {limit:.1%}", file=sys.stderr)
        return 3
    return 0


def _manifest_output(manifest: str) -> str | None:
    try:
        import yaml

        return str(yaml.safe_load(Path(manifest).read_text()).get("output"))
    except Exception:  # noqa: BLE001 - only to name where the error happened
        return None


def _cmd_plan(args) -> int:
    from vidrd_data.build import make_context
    from vidrd_data.manifest import ManifestError, load_manifest
    from vidrd_data.plan_check import check_plan, count_inputs, describe_plan

    try:
        resolved = load_manifest(args.manifest, output=args.output)
        ctx = make_context(resolved)
        checked = check_plan(resolved, ctx)
        counts = count_inputs(resolved, ctx)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = resolved.manifest
    length = f"{m.clip.frames} frames" if m.clip.frames else f"{m.clip.min_seconds}-{m.clip.max_seconds} s"
    print(f"vidrd-data plan: {m.name}  (config {resolved.config_hash()}); checked, nothing run")
    print(f"  output   {m.output}")
    print(f"  clip     {m.clip.size[0]}x{m.clip.size[1]} @ {m.clip.fps:g} fps, {length}; "
          f"shards of <= {m.shard.max_samples} samples")
    print(f"  ray      {args.ray_address or m.ray.address or 'embedded'}")
    for line in describe_plan(checked, resolved, counts):
        print(line)
    return 0


def quiet_ray() -> None:
    """-q: nothing from Ray's loggers on this terminal; their files in the session's log folder stay as they
    are. Ray attaches its terminal handlers at import (Ray Data: its own), so those are turned off here."""
    import ray  # noqa: F401

    try:
        import ray.data  # noqa: F401 - configures its handlers on import
    except ImportError:
        pass
    for name in ("ray", "ray.data", "ray.train"):
        for handler in logging.getLogger(name).handlers:
            if getattr(handler, "stream", None) in (sys.stderr, sys.stdout):
                handler.setLevel(logging.CRITICAL + 1)


def ray_log_dir() -> str | None:
    """The log folder of this process's Ray session (workers, raylet, GCS), or None without one."""
    try:
        import ray

        node = ray._private.worker._global_node  # no public API for it (Ray 2.x)
        return node.get_logs_dir_path() if ray.is_initialized() and node is not None else None
    except (ImportError, AttributeError):
        return None


def _cmd_inspect(args) -> int:
    from vidrd_data.inspect_output import contact_sheet, summarize

    print(summarize(args.output))
    sheet = args.sheet or str(Path(args.output) / "contact_sheet.png")
    try:
        path = contact_sheet(args.output, sheet, n=args.n)
        print(f"contact sheet: {path}")
    except ValueError as exc:
        print(f"no contact sheet: {exc}")
    return 0


def _cmd_report(args) -> int:
    from vidrd_data.report import write_report

    try:
        path = write_report(args.output, args.dest, n_samples=args.n)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0


def _cmd_export(args) -> int:
    from vidrd_data.exports import export

    try:
        path = export(args.output, args.to, args.dest)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.to} export: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidrd-data", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (vidrd_data and libraries)")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build shards from a manifest",
                       description="Validate the manifest and its recipes, print the plan, run the stages on Ray "
                                   "and commit WebDataset shards (resuming where a previous run stopped).")
    _manifest_args(b)
    b.add_argument("--no-resume", action="store_true", help="delete existing shards and start over")
    b.add_argument("--retry-failed", action="store_true", help="also rerun inputs whose committed rows are failed")
    b.add_argument("--force", action="store_true", help="resume an output built with a different config (mixes configs)")
    b.add_argument("--max-items", type=int, default=None, metavar="N",
                   help="a trial run: at most N pending inputs per source")
    b.add_argument("--max-failed-fraction", type=float, default=None, metavar="F",
                   help="exit 3 when more than this fraction of inputs failed (default: the manifest's "
                        "ray.max_failed_fraction, 1.0)")
    b.add_argument("-q", "--quiet", action="store_true",
                   help="print only the plan and the summary: no progress bar, nothing from Ray (its logs stay "
                        "in the log folder the summary names)")
    b.set_defaults(func=_cmd_build)

    pl = sub.add_parser("plan", help="validate a manifest and print its plan, without running anything",
                        description="Check the manifest, every recipe's stage chain and parameters, the models "
                                    "and the inputs, then print the plan (sources, input counts, stages, what "
                                    "each reads and adds). Starts no Ray, writes nothing.")
    _manifest_args(pl)
    pl.set_defaults(func=_cmd_plan)

    i = sub.add_parser("inspect", help="counts, failure reasons and a contact sheet of a built output")
    i.add_argument("output", help="a built output folder (the manifest's output)")
    i.add_argument("--sheet", default=None, help="contact sheet path (default OUT/contact_sheet.png)")
    i.add_argument("-n", type=int, default=12, help="clips on the contact sheet")
    i.set_defaults(func=_cmd_inspect)

    r = sub.add_parser("report", help="one self-contained HTML page about a built output",
                       description="Outcomes per source, reasons, histograms of durations, scores and captions, "
                                   "a sample grid and the manifest, in one HTML file (no network, no JavaScript).")
    r.add_argument("output", help="a built output folder")
    r.add_argument("--dest", default=None, help="where to write it (default OUT/report.html)")
    r.add_argument("-n", type=int, default=24, help="clips in the sample grid")
    r.set_defaults(func=_cmd_report)

    e = sub.add_parser("export", help="write a built output in another tool's form",
                       description="index: a Parquet of every clip (pandas/DuckDB); opensora / webvid: their CSVs "
                                   "with the clips extracted to files; hf: a Hugging Face datasets save_to_disk folder.")
    e.add_argument("output", help="a built output folder")
    e.add_argument("--to", required=True, choices=["index", "opensora", "webvid", "hf"], help="the target form (see above)")
    e.add_argument("--dest", default=None, help="destination folder (default OUT/exports/FORMAT)")
    e.set_defaults(func=_cmd_export)

    m = sub.add_parser("models", help="model utilities")
    msub = m.add_subparsers(dest="models_command", required=True)
    for name, module_name in MODEL_COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_parser(msub)
    return p


def _manifest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", required=True, metavar="PATH", help="the corpus manifest (YAML), e.g. manifests/demo.yaml")
    p.add_argument("--output", default=None, metavar="DIR_OR_URL",
                   help="write here instead of the manifest's `output` (a local folder or an fsspec URL)")
    p.add_argument("--ray-address", default=None, metavar="ADDR",
                   help='join a Ray cluster ("auto", "ray://host:10001"); default: the manifest\'s ray.address, '
                        "else an embedded Ray")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
