"""Training state without pickle (a crafted checkpoint cannot run code) and logs that survive a resume."""

from __future__ import annotations

import csv
import os
import pickle
import shutil

import pytest
import torch

from tests.training.conftest import tiny_train_config
from vidrd_model.checkpoint_layout import LEGACY_STATE, STATE_JSON, STATE_TENSORS, list_checkpoints
from vidrd_model.cli import main
from vidrd_model.training import run_training, single_process_context
from vidrd_model.training.runner import build_task
from vidrd_model.training.state_io import UnsafeCheckpointError, load_training_state, save_training_state
from vidrd_testing.synthetic_shards import write_synthetic_shards

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    pass


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("state_shards")
    write_synthetic_shards(str(root), num_shards=2, per_shard=2, frames=6, size=32)
    return root / "shards"


class _WritesMarker:
    """Unpickling this calls os.system: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_state_round_trip_is_exact_and_pickle_free(tmp_path):
    state = {"step": 3, "optim": {"state": {0: {"exp_avg": torch.randn(2, 3), "step": torch.tensor(3.0)}},
                                  "param_groups": [{"betas": (0.9, 0.999), "params": [0], "lr": 1e-3}]},
             "rng": {"torch": torch.get_rng_state(), "python": {"version": 3, "state": torch.arange(5)}},
             "none": None, "flags": [True, "x", 2.5]}
    save_training_state(tmp_path, state)
    assert sorted(os.listdir(tmp_path)) == [STATE_JSON, STATE_TENSORS]
    back = load_training_state(tmp_path)
    assert back["optim"]["state"][0]["step"] == 3 and isinstance(back["optim"]["param_groups"][0]["betas"], tuple)
    assert torch.equal(back["optim"]["state"][0]["exp_avg"], state["optim"]["state"][0]["exp_avg"])
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"]) and back["flags"] == [True, "x", 2.5]
    with pytest.raises(TypeError, match="s.bad"):
        save_training_state(tmp_path, {"bad": object()})


def test_crafted_pickle_checkpoint_is_refused_and_runs_nothing(shards, tiny_model, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint-00000002"
    ckpt.mkdir(parents=True)
    with open(ckpt / LEGACY_STATE, "wb") as f:  # a legacy (non-zip) torch file is a bare pickle
        pickle.dump({"step": 2, "payload": _WritesMarker(marker)}, f, protocol=2)
    assert list_checkpoints(tmp_path / "run") == [ckpt]  # resume sees it (and must refuse it), not skip it

    with pytest.raises(UnsafeCheckpointError, match="weights_only=True"):
        load_training_state(ckpt)
    rc = main(["train", "--shards", str(shards / "*.tar"), "--pretrained", str(tiny_model), "--output-dir",
               str(tmp_path / "run"), "--resume", "latest", "--max-steps", "4", "--device", "cpu",
               "--dataloader-workers", "0", "--num-frames", "4", "--resolution", "32"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "refused to load" in err and LEGACY_STATE in err
    assert not marker.exists()
    # the payload is live: unpickling it the unsafe way does write the marker
    with open(ckpt / LEGACY_STATE, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _tb_steps(logdir, tag="loss"):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_metrics_single_header_after_resume_and_same_steps_as_tensorboard(shards, tiny_model, tmp_path):
    out = tmp_path / "run"
    common = dict(ema={"enabled": False})
    cfg = tiny_train_config(shards, tiny_model, out, run={"max_steps": 3, "checkpoint_every": 2,
                                                           "logger": "tensorboard"}, **common)
    run_training(build_task("unet", cfg, CPU), cfg, single_process_context("cpu"))
    # the run "dies" after logging step 3 but before its checkpoint: resume starts again from step 2
    shutil.rmtree(list_checkpoints(out)[-1])
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-00000002"]
    cfg = tiny_train_config(shards, tiny_model, out, run={"max_steps": 5, "checkpoint_every": 2,
                                                           "logger": "tensorboard"}, **common)
    run_training(build_task("unet", cfg, CPU), cfg, single_process_context("cpu"), resume="latest")

    rows = _csv_rows(out / "logs" / "metrics.csv")
    header, body = rows[0], rows[1:]
    assert header[0] == "step" and "loss" in header and header not in body
    steps = [int(r[0]) for r in body]
    assert steps == [1, 2, 3, 4, 5]
    assert all(len(r) == len(header) for r in body)
    assert _tb_steps(out / "logs" / "tensorboard") == steps
