"""Fixtures of the long-video tests: the tiny MiniGPT-4, converted once per session from LAVIS-style parts."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_minigpt4_parts(tmp_path_factory):
    from vidrd_testing.tiny_models import save_tiny_lavis_parts

    return save_tiny_lavis_parts(tmp_path_factory.mktemp("minigpt4_src"))


@pytest.fixture(scope="session")
def tiny_minigpt4(tiny_minigpt4_parts, tmp_path_factory):
    from vidrd_data.models.convert_minigpt4 import convert

    p = tiny_minigpt4_parts
    return convert(p["minigpt4"], p["blip2"], p["llama"], tmp_path_factory.mktemp("minigpt4") / "model")
