"""benchmarks/bench_gpu_model.py: skips cleanly without CUDA, and its CPU smoke path runs on a tiny config."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu_model.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cuda_run_without_cuda_is_a_clear_skip(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _bench().main(["--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "CUDA is not available" in out and "nothing was measured" in out


def test_cpu_smoke_path_on_a_tiny_config(tmp_path, one_torch_thread):
    result_file = tmp_path / "result.json"
    assert _bench().main(["--device", "cpu", "--tiny", "--iters", "1", "--clips", "2", "--json", str(result_file)]) == 0
    result = json.loads(result_file.read_text())
    rows = result["unet"]
    assert {(r["model"], r["grad_ckpt"]) for r in rows} == {(m, c) for m in ("vidrd", "diffusers") for c in (False, True)}
    assert all(r["s_per_step"] > 0 and r["peak_above_weights_gib"] > 0 for r in rows)
    assert result["sampler"]["s_per_clip"] > 0 and len(result["sampler"]["clip_seconds"]) == 2
