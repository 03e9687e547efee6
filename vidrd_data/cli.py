"""`vidrd-data`: build text-to-video shards (build), look at them (inspect), manage models (models ...)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

MODEL_COMMANDS = {"convert-minigpt4": "vidrd_data.models.convert_minigpt4"}


def _cmd_build(args) -> int:
    from vidrd_data.build import build
    from vidrd_data.manifest import ManifestError

    try:
        report = build(args.manifest, ray_address=args.ray_address, resume=not args.no_resume,
                       retry_failed=args.retry_failed, max_items=args.max_items, progress=not args.quiet)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    limit = args.max_failed_fraction if args.max_failed_fraction is not None else \
        report.info.get("resolved", {}).get("manifest", {}).get("ray", {}).get("max_failed_fraction", 1.0)
    if report.failed_fraction > limit:
        print(f"error: {report.failed_inputs}/{report.inputs} inputs failed ({report.failed_fraction:.1%}), "
              f"above max_failed_fraction {limit:.1%}", file=sys.stderr)
        return 3
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidrd-data", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="build shards from a manifest")
    b.add_argument("--manifest", required=True)
    b.add_argument("--ray-address", default=None, help='join a Ray cluster ("auto", "ray://host:10001"); default: the manifest\'s ray.address, else embedded Ray')
    b.add_argument("--no-resume", action="store_true", help="delete existing shards and start over")
    b.add_argument("--retry-failed", action="store_true", help="also rerun inputs whose committed rows are failed")
    b.add_argument("--max-items", type=int, default=None, help="dry run: at most N pending inputs per source")
    b.add_argument("--max-failed-fraction", type=float, default=None, help="exit 3 when more inputs failed than this")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_cmd_build)

    i = sub.add_parser("inspect", help="counts, failure reasons and a contact sheet of a built output")
    i.add_argument("output")
    i.add_argument("--sheet", default=None, help="contact sheet path (default OUT/contact_sheet.png)")
    i.add_argument("-n", type=int, default=12, help="clips on the contact sheet")
    i.set_defaults(func=_cmd_inspect)

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
