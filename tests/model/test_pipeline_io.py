"""The VidRD model folder: tiny random models round-trip through the real loading code."""

import shutil

import pytest
import torch

from vidrd_model.models import CheckpointMismatchError, TemporalAutoencoderKL, VidRDUNet3DConditionModel
from vidrd_model.pipeline_io import ModelFolderError, VidRDComponents, load_released, load_vidrd, save_vidrd
from vidrd_testing.tiny_vidrd import TOKENIZER_MAX_LENGTH, make_tiny_sd2, make_tiny_vidrd


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return make_tiny_vidrd(tmp_path_factory.mktemp("vidrd") / "tiny", seed=0, perturb_temporal=0.02)


def _encode(c: VidRDComponents, prompts):
    ids = c.tokenizer(prompts, padding="max_length", max_length=c.tokenizer.model_max_length,
                      truncation=True, return_tensors="pt").input_ids
    return c.text_encoder(ids)[0]


def test_tiny_folder_layout_and_loading(tiny_folder):
    for part in ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                 "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
                 "scheduler/scheduler_config.json"]:
        assert (tiny_folder / part).is_file(), part
    c = load_vidrd(tiny_folder, device="cpu", dtype=torch.float32)
    assert isinstance(c.unet, VidRDUNet3DConditionModel) and isinstance(c.vae, TemporalAutoencoderKL)
    assert type(c.scheduler).__name__ == "DDIMScheduler" and c.scheduler.config.steps_offset == 1
    assert c.tokenizer.model_max_length == TOKENIZER_MAX_LENGTH
    text = _encode(c, ["a dog running on the beach", "Zürich, 東京 ✨ — any text tokenises"])
    assert text.shape == (2, TOKENIZER_MAX_LENGTH, c.unet.config.cross_attention_dim)
    with torch.no_grad():
        latents = torch.randn(2, 4, 3, 8, 8)
        eps = c.unet(latents, torch.tensor([1, 999]), text).sample
        video = c.vae.decode(latents[:1] / c.vae.config.scaling_factor, num_frames=3).sample
    assert eps.shape == latents.shape and torch.isfinite(eps).all()
    assert video.shape == (1, 3, 3, 64, 64)


def test_save_load_round_trip_and_dtype(tiny_folder, tmp_path):
    c = load_vidrd(tiny_folder)
    again = load_vidrd(save_vidrd(c, tmp_path / "copy"))
    for a, b in [(c.unet, again.unet), (c.vae, again.vae), (c.text_encoder, again.text_encoder)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    half = load_vidrd(tiny_folder, dtype=torch.bfloat16)
    assert half.unet.dtype == half.vae.dtype == half.text_encoder.dtype == torch.bfloat16
    assert load_vidrd(half, dtype=torch.float32).unet.dtype == torch.float32  # components pass through


def test_missing_parts_are_named(tiny_folder, tmp_path):
    with pytest.raises(ModelFolderError, match="no_such_model"):
        load_vidrd(tmp_path / "no_such_model")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_folder, broken)
    shutil.rmtree(broken / "vae")
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ModelFolderError) as err:
        load_vidrd(broken)
    msg = str(err.value)
    assert "vae/" in msg and "unet/diffusion_pytorch_model.safetensors" in msg and "vidrd-model init" in msg


def test_load_released_checkpoint_format(tmp_path):
    sd2 = make_tiny_sd2(tmp_path / "sd2", seed=3)
    src = load_vidrd(make_tiny_vidrd(tmp_path / "vidrd", seed=5, perturb_temporal=0.02))
    state = {f"unet.{k}": v for k, v in src.unet.state_dict().items()}
    state.update({f"text_encoder.{k}": v for k, v in src.text_encoder.state_dict().items()})
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ModelT2V.pth")
    src.vae.save_pretrained(tmp_path / "vae_finetuned")

    c = load_released(tmp_path / "ModelT2V.pth", sd2, tmp_path / "vae_finetuned")
    for a, b in [(src.unet, c.unet), (src.text_encoder, c.text_encoder), (src.vae, c.vae)]:
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # without vae_finetuned/, SD's VAE gets identity temporal layers
    plain = load_released(tmp_path / "ModelT2V.pth", sd2)
    z = torch.randn(4, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(plain.vae.decode(z, num_frames=4).sample, plain.vae.decode(z, num_frames=1).sample)

    del state["unet.conv_in.bias"]
    state["unet.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointMismatchError) as err:
        load_released(tmp_path / "bad.pth", sd2)
    assert "conv_in.bias" in str(err.value) and "extra.weight" in str(err.value)
    with pytest.raises(FileNotFoundError, match="ModelT2V.pth"):
        load_released(tmp_path / "absent.pth", sd2)
