"""Sub-commands of `vidrd-model`: each module defines `add_parser(subparsers)` and `run(args) -> int`."""
