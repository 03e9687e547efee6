"""Every flag of both commands (`vidrd-data`, `vidrd-model`, all sub-commands) says what it does."""

from __future__ import annotations

import argparse

import pytest


def _flags_without_help(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _flags_without_help(sub, f"{prefix} {name}")
        elif not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
            out.append(f"{prefix} {'/'.join(action.option_strings) or action.dest}")
    return out


@pytest.mark.parametrize("module", ["vidrd_data.cli", "vidrd_model.cli"])
def test_every_flag_has_help(module):
    import importlib

    parser = importlib.import_module(module).build_parser()
    missing = _flags_without_help(parser, parser.prog)
    assert not missing, "flags without help:\n" + "\n".join(missing)
