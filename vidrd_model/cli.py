"""`vidrd-model`: init, convert, train, train-vae, sample, eval.

Each sub-command lives in `vidrd_model.commands.<name>` and exposes `add_parser(subparsers)` and `run(args)`.
Modules are imported lazily so that `vidrd-model --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "init": "vidrd_model.commands.init",
    "convert": "vidrd_model.commands.convert",
    "train": "vidrd_model.commands.train",
    "train-vae": "vidrd_model.commands.train_vae",
    "sample": "vidrd_model.commands.sample",
    "eval": "vidrd_model.commands.evaluate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidrd-model", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # command not built yet
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
