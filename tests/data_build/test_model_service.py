"""vidrd_data.models.service: the one place model stages find a model, pick its device and dtype, and size
their actors."""

from __future__ import annotations

import shutil

import pytest

from vidrd_data.models import service


def _model_dir(path, files=("config.json",)):
    path.mkdir(parents=True)
    for name in files:
        (path / name).write_text("{}")
    return path


def test_local_directories_absolute_or_relative_to_the_base_dir(tmp_path):
    d = _model_dir(tmp_path / "models" / "m")
    assert service.resolve_model_dir(str(d), label="X", setting="models.x.path") == d
    assert service.resolve_model_dir("models/m", tmp_path, label="X", setting="models.x.path") == d


def test_missing_and_incomplete_models_say_what_where_and_how(tmp_path):
    with pytest.raises(service.ModelNotFound, match=r"X model './nope' \(models.x.path\) not found: no directory"):
        service.resolve_model_dir("./nope", tmp_path, label="X", setting="models.x.path")
    _model_dir(tmp_path / "half", files=("weights.bin",))
    with pytest.raises(service.ModelNotFound, match=r"incomplete \(missing config.json; a.json or b.json\); do this"):
        service.resolve_model_dir("half", tmp_path, label="X", setting="models.x.path",
                                  required=("config.json", ("a.json", "b.json")), how_to="do this")


def test_hub_ids_come_from_the_local_cache_only(tmp_path, monkeypatch):
    from huggingface_hub import constants

    snap = tmp_path / "hub" / "models--org--m" / "snapshots" / ("0" * 40)
    _model_dir(snap)
    (tmp_path / "hub" / "models--org--m" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--m" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert service.resolve_model_dir("org/m", tmp_path, label="X", setting="s") == snap
    shutil.rmtree(tmp_path / "hub")
    with pytest.raises(service.ModelNotFound, match=r"not in the Hugging Face cache .*HF_HUB_OFFLINE"):
        service.resolve_model_dir("org/m", tmp_path, label="X", setting="s")


def test_model_files_relative_to_the_base_dir_and_pretrained_tags(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"x")
    assert service.resolve_model_file("w.bin", tmp_path) == str(tmp_path / "w.bin")
    assert service.resolve_model_file("openai", tmp_path) == "openai"  # a tag, left as it is
    assert service.looks_like_file("a/b.pt") and not service.looks_like_file("openai")


def test_settings_overrides_device_dtype_and_actor_resources():
    models = {"blip2": {"path": "p", "device": "cpu", "batch_size": 8}}
    spec = service.model_settings(models, "blip2", {"device": "cuda", "batch_size": None, "prompt": "x"})
    assert spec == {"path": "p", "device": "cuda", "batch_size": 8, "key": "blip2"}  # non-null overrides only
    import torch

    assert service.pick_device("cpu") == "cpu"
    assert service.pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert service.pick_dtype("auto", "cpu") is torch.float32 and service.pick_dtype("auto", "cuda") is torch.float16
    assert service.pick_dtype("bfloat16", "cpu") is torch.bfloat16
    with pytest.raises(ValueError, match="dtype must be auto or one of"):
        service.pick_dtype("int8", "cpu")


def test_actor_resources_on_a_small_cpu_node(ray_session):
    # the session's embedded Ray: 2 CPUs, no GPU -> an actor reserves no CPU (see actor_resources)
    res = service.actor_resources("auto")
    assert (res.num_cpus, res.num_gpus) == (0, 0)
