"""A model stage whose actor cannot start fails the build before any work, with the actor's own error (16.6)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from tests.data_build.helpers import write_folder_dataset, write_manifest
from vidrd_data.build import BuildError, build
from vidrd_testing.tiny_models import save_tiny_blip2

RECIPE = {"kind": "image_text", "max_outputs_per_input": 1, "items_per_task": 4,
          "stages": [{"stage": "load_image"}, {"stage": "pseudo_motion"},
                     {"stage": "caption_blip2", "params": {"model": "blip2"}},
                     {"stage": "caption_select", "params": {"priority": ["blip2", "original"]}},
                     {"stage": "encode"}]}


def test_broken_model_fails_the_build_early_with_its_error(tmp_path, ray_session):
    model = save_tiny_blip2(tmp_path / "blip2")
    weights = sorted(Path(model).rglob("*.safetensors")) + sorted(Path(model).rglob("*.bin"))
    assert weights
    for w in weights:
        w.write_bytes(b"this is not a weights file")  # present (the up-front check passes), unloadable
    write_folder_dataset(tmp_path / "imgs", 4, size=(96, 80))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(RECIPE))
    source = {"name": "p", "kind": "image_text", "recipe": str(tmp_path / "recipe.yaml"),
              "input": {"format": "folder", "root": str(tmp_path / "imgs")}}
    m = write_manifest(tmp_path / "m.yaml", tmp_path / "out", [source],
                       extra=f"models:\n  blip2: {{path: {model}, device: cpu}}\n")
    t = time.time()
    with pytest.raises(BuildError, match=r"model stage caption_blip2: its actor could not start: .*\S") as err:
        build(m, progress=False, out=lambda s: None)
    assert time.time() - t < 120
    print(err.value)
    assert not list((tmp_path / "out" / "shards").glob("*_stats.json"))  # no work was done
