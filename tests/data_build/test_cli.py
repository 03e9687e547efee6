"""`vidrd-data` command line: `plan` checks and prints without running, every flag has help, and a `-q`
build prints the plan and the summary and nothing else (no progress bar, nothing from Ray)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.data_build.helpers import write_folder_dataset
from vidrd_data.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def _photos_manifest(tmp_path: Path, recipe: str = "image_text", n: int = 3) -> Path:
    write_folder_dataset(tmp_path / "imgs", n)
    doc = {"name": "cli", "output": str(tmp_path / "out"), "shard": {"max_samples": 8},
           "sources": [{"name": "photos", "kind": "image_text", "recipe": recipe,
                        "input": {"format": "folder", "root": str(tmp_path / "imgs")}}]}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_plan_checks_and_prints_without_running_anything(tmp_path, capsys):
    import ray

    started = ray.is_initialized()
    path = _photos_manifest(tmp_path)
    assert main(["plan", "--manifest", str(path), "--output", str(tmp_path / "other")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("vidrd-data plan: cli")
    assert f"output   {tmp_path / 'other'}" in out
    assert "photos [image_text/folder]: 3 inputs" in out
    assert re.search(r"pseudo_motion +\[CPU task\] reads 'image' -> adds frames", out), out
    assert not (tmp_path / "out").exists() and not (tmp_path / "other").exists()
    assert ray.is_initialized() == started


def test_plan_of_a_broken_chain_exits_2_naming_stage_and_key(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"kind": "image_text", "stages": [
        {"stage": "load_image"}, {"stage": "caption_select"}, {"stage": "encode"}]}))
    assert main(["plan", "--manifest", str(_photos_manifest(tmp_path, str(recipe)))]) == 2
    err = capsys.readouterr().err
    assert "stage encode (stages[2]) requires item key 'frames'" in err and "pseudo_motion" in err


def test_every_flag_of_build_and_plan_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("build", "plan", "inspect"):
        for action in sub.choices[name]._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 10, (name, action.dest)
    assert all(a.help for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)))


def test_quiet_build_prints_only_the_plan_and_the_summary(tmp_path, demo_data):
    """A build with a model stage (the tiny BLIP-2 captioner's actor pool) and -q, in its own process."""
    path = _photos_manifest(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["models"] = {"blip2": {"path": str(demo_data / "models" / "tiny-blip2"), "batch_size": 4}}
    doc["sources"].append({"name": "actions", "kind": "short_video", "recipe": "short_video",
                           "input": {"format": "class_folders", "root": str(demo_data / "ucf_like")},
                           "overrides": {"caption_blip2": {"max_new_tokens": 4}}})
    path.write_text(yaml.safe_dump(doc))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # the product's defaults
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "vidrd_data.cli", "build", "--manifest", str(path), "-q",
                           "--max-items", "1", "--output", str(tmp_path / "q")],
                          capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == "", proc.stderr[-3000:]  # nothing from Ray, no progress bar, no warnings
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("vidrd-data build: cli")
    done = next(i for i, ln in enumerate(lines) if ln.startswith("done in "))
    plan, summary = lines[:done], lines[done:]
    assert all(ln.startswith("  ") for ln in plan[1:]), plan  # the plan block: indented lines only
    assert any("caption_blip2" in ln and "actor pool" in ln for ln in plan)
    assert re.match(r"done in [\d.]+ s: \d+ success", summary[0])
    logs = [ln for ln in summary if ln.startswith("  ray logs ")]
    assert len(logs) == 1 and Path(logs[0].split("ray logs ", 1)[1]).is_dir()
    for ln in summary[1:]:
        assert re.match(r"(  ray logs /|failures and filters by reason:|  +\d+  |  \d+ item\(s\) re-emitted)", ln), ln
    assert (tmp_path / "q" / "dataset_info.json").is_file() and not (tmp_path / "out").exists()
