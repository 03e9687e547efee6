"""The model side as users start it: SD 2.x folder -> `vidrd-model init` -> `train` -> `sample`, the released
checkpoint -> `vidrd-model convert`, and saved folders opening through `DiffusionPipeline.from_pretrained`."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch

from vidrd_model.cli import main
from vidrd_model.sampling.writer import probe_video
from vidrd_testing.synthetic_shards import write_synthetic_shards
from vidrd_testing.tiny_vidrd import make_tiny_sd2, make_tiny_vidrd

TRAIN = ["--max-steps", "2", "--batch-size", "2", "--num-frames", "4", "--frame-stride", "1", "--resolution", "32",
         "--dataloader-workers", "0", "--learning-rate", "1e-3", "--warmup-steps", "0", "--checkpoint-every", "0",
         "--log-every", "1", "--device", "cpu", "--set", "run.logger=csv", "--set", "data.shuffle_buffer=4"]
SAMPLE = ["--num-clips", "2", "--num-frames", "4", "--overlap-frames", "2", "--steps", "2", "--height", "64",
          "--width", "64", "--device", "cpu", "--no-progress"]


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    pass


@pytest.fixture(scope="module")
def sd2(tmp_path_factory):
    return make_tiny_sd2(tmp_path_factory.mktemp("sd2") / "sd2", seed=1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("init_shards")
    write_synthetic_shards(str(root), num_shards=2, per_shard=2, frames=6, size=32)
    return str(root / "shards" / "*.tar")


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_init_train_sample_and_diffusers_round_trip(sd2, shards, tmp_path, capsys):
    from diffusers import DiffusionPipeline, UNet2DConditionModel

    from vidrd_model.pipeline_vidrd import VidRDPipeline

    model = tmp_path / "vidrd_init"
    assert main(["init", "--from", str(sd2), "--output", str(model)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["unet_temporal_parameters"] > 0
    # every SD weight carried over unchanged; the temporal layers are extra
    inflated = VidRDPipeline.from_pretrained(model)
    sd_unet = UNet2DConditionModel.from_pretrained(sd2 / "unet").state_dict()
    ours = inflated.unet.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in sd_unet.items())
    assert set(ours) - set(sd_unet) and all(".temp_" in k for k in set(ours) - set(sd_unet))

    # diffusers' own door returns our class, with the same weights
    pipe = DiffusionPipeline.from_pretrained(str(model), trust_remote_code=True)
    assert type(pipe) is VidRDPipeline
    assert all(torch.equal(pipe.unet.state_dict()[k], v) for k, v in ours.items())
    frames = pipe("a dog", num_clips=2, num_frames=4, overlap_frames=2, num_inference_steps=2, height=64,
                  width=64, progress=False, generator=torch.Generator().manual_seed(0)).frames[0]
    assert frames.shape == (8, 64, 64, 3) and frames.dtype.name == "uint8"
    # without trust_remote_code diffusers refuses to run the folder's pipeline_vidrd.py (its rule, kept)
    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(str(model))

    out = tmp_path / "train"
    assert main(["train", "--shards", shards, "--pretrained", str(model), "--output-dir", str(out), *TRAIN]) == 0
    trained = out / "model"
    report = json.loads((out / "logs" / "data_rank0.json").read_text())
    assert report["contributed"] == {"synthetic": 4}  # 2 steps x batch 2, by source
    assert type(DiffusionPipeline.from_pretrained(str(trained), trust_remote_code=True)) is VidRDPipeline
    changed = VidRDPipeline.from_pretrained(trained).unet.state_dict()
    assert any(not torch.equal(changed[k], ours[k]) for k in ours if ".temp_" in k)

    video = tmp_path / "sample.mp4"
    assert main(["sample", "--model", str(trained), "--prompt", "a cat", "--output", str(video), *SAMPLE]) == 0
    assert probe_video(video)["frames"] == 8


def test_train_pretrained_sd2_folder_inflates_on_load(sd2, shards, tmp_path, caplog):
    from vidrd_model.pipeline_vidrd import VidRDPipeline

    out = tmp_path / "train_sd"
    with caplog.at_level(logging.WARNING, logger="vidrd_model.sd_inflate"):
        assert main(["train", "--shards", shards, "--pretrained", str(sd2), "--output-dir", str(out), *TRAIN]) == 0
    assert any("inflating it to VidRD on load" in r.getMessage() for r in caplog.records)
    # the exported model is a VidRD folder (temporal VAE too), not a copy of the SD folder
    pipe = VidRDPipeline.from_pretrained(out / "model")
    assert type(pipe.vae).__name__ == "TemporalAutoencoderKL" and pipe.unet.temporal_parameters()


def test_init_hub_id_absent_from_cache_names_what_to_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(["init", "--from", "someorg/not-cached-sd2", "--output", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "hf download someorg/not-cached-sd2" in err and "local Hugging Face cache" in err
    assert not (tmp_path / "x").exists()


def test_convert_released_checkpoint(sd2, tmp_path, capsys):
    from vidrd_model.pipeline_vidrd import VidRDPipeline
    from vidrd_model.pipeline_io import load_vidrd

    src = load_vidrd(make_tiny_vidrd(tmp_path / "src", seed=5, perturb_temporal=0.02))
    state = {f"unet.{k}": v for k, v in src.unet.state_dict().items()}
    state.update({f"text_encoder.{k}": v for k, v in src.text_encoder.state_dict().items()})
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ModelT2V.pth")
    src.vae.save_pretrained(tmp_path / "vae_finetuned")

    out = tmp_path / "converted"
    assert main(["convert", "--released", str(tmp_path / "ModelT2V.pth"), "--vae", str(tmp_path / "vae_finetuned"),
                 "--sd-base", str(sd2), "--output", str(out)]) == 0
    pipe = VidRDPipeline.from_pretrained(out)
    for a, b in [(src.unet, pipe.unet), (src.vae, pipe.vae), (src.text_encoder, pipe.text_encoder)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

    del state["unet.conv_in.bias"]
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    assert main(["convert", "--released", str(tmp_path / "bad.pth"), "--sd-base", str(sd2),
                 "--output", str(tmp_path / "bad")]) == 2
    assert "conv_in.bias" in capsys.readouterr().err and not (tmp_path / "bad").exists()

    # a crafted checkpoint (a pickle that runs a command) is refused before anything runs
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": {"unet.x": torch.zeros(1)}, "hook": Payload()}, tmp_path / "evil.pth")
    assert main(["convert", "--released", str(tmp_path / "evil.pth"), "--sd-base", str(sd2),
                 "--output", str(tmp_path / "evil")]) == 2
    assert "weights_only=True" in capsys.readouterr().err and not marker.exists()
