"""`vidrd-model sample` end to end on a tiny random model saved to disk."""

import json

import pytest
import torch

from vidrd_model.cli import main
from vidrd_model.sampling.writer import probe_video, read_mp4_comment

K, N, M = 2, 4, 2
COMMON = ["--num-clips", str(K), "--num-frames", str(N), "--overlap-frames", str(M), "--steps", "2",
          "--height", "64", "--width", "64", "--device", "cpu", "--no-progress", "--seed", "7"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from vidrd_testing.tiny_vidrd import make_tiny_vidrd

    return make_tiny_vidrd(tmp_path_factory.mktemp("tiny") / "model", perturb_temporal=0.05)


def test_sample_writes_playable_mp4_with_settings(tiny_model, tmp_path):
    out = tmp_path / "video.mp4"
    rc = main(["sample", "--model", str(tiny_model), "--prompt", "a dog running on the beach",
               "--output", str(out), "--gif", "--grid", *COMMON])
    assert rc == 0
    info = probe_video(out)
    assert info["frames"] == K * N and (info["width"], info["height"]) == (64, 64)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["fps"] == 8.0
    meta = read_mp4_comment(out)
    assert meta["prompt"] == "a dog running on the beach" and meta["seed"] == 7
    assert meta["sampler"]["num_clips"] == K and meta["sampler"]["overlap_frames"] == M
    assert meta["sampler"]["frame_noise_reversion"] and meta["decode"] == "temporal"
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["frames"] == K * N and sidecar["scheduler"]["name"] == "ddim"
    assert probe_video(out.with_suffix(".gif"))["frames"] == K * N
    assert (tmp_path / "video_grid.png").stat().st_size > 0


def test_sample_drop_overlap_prompt_file_and_switches(tiny_model, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# a comment\na cat\n\n")
    rc = main(["sample", "--model", str(tiny_model), "--prompt-file", str(prompts), "--output-dir",
               str(tmp_path / "out"), "--drop-overlap", "--decode", "per-frame", "--no-dsg",
               "--scheduler", "dpm++", *COMMON])
    assert rc == 0
    (video,) = sorted((tmp_path / "out").glob("*.mp4"))
    assert video.name == "0000_a_cat.mp4"
    assert probe_video(video)["frames"] == K * N - (K - 1) * M
    meta = read_mp4_comment(video)
    assert meta["drop_overlap"] and meta["decode"] == "per-frame" and not meta["sampler"]["staged_guidance"]


def test_sample_without_prompt_or_model_explains(tiny_model, tmp_path, capsys):
    assert main(["sample", "--model", str(tiny_model)]) == 2
    assert "--prompt" in capsys.readouterr().err
    assert main(["sample", "--released-checkpoint", str(tmp_path / "ModelT2V.pth"), "--prompt", "x"]) == 2
    assert "--sd-base" in capsys.readouterr().err
    assert main(["sample", "--model", str(tmp_path / "nowhere"), "--prompt", "x"]) == 2
    assert "folder not found" in capsys.readouterr().err


def test_training_checkpoint_is_applied_onto_its_base_model(tiny_model, tmp_path):
    from vidrd_model.models import VidRDUNet3DConditionModel
    from vidrd_model.sampling.model_source import load_components

    ckpt = tmp_path / "checkpoint-00000010"
    unet = VidRDUNet3DConditionModel.from_pretrained(tiny_model / "unet")
    with torch.no_grad():
        next(unet.parameters()).add_(1.0)
    unet.save_pretrained(ckpt / "unet")
    torch.save({}, ckpt / "training_state.pt")
    (ckpt / "train_config.yaml").write_text(f"model:\n  pretrained: {tiny_model}\n")
    comps, source = load_components(model=str(ckpt))
    assert source["kind"] == "training_checkpoint" and source["replaced"] == ["unet"]
    torch.testing.assert_close(next(comps.unet.parameters()), next(unet.parameters()))


def test_released_checkpoint_with_sd_base_folder(tmp_path):
    """ModelT2V.pth (state_dict with unet.* / text_encoder.*) + an SD 2.x folder load through the CLI's path."""
    from vidrd_model.sampling.model_source import load_components
    from vidrd_testing.tiny_vidrd import make_tiny_components, make_tiny_sd2

    sd = make_tiny_sd2(tmp_path / "sd21")
    ref = make_tiny_components(seed=3)
    state = {f"unet.{k}": v for k, v in ref.unet.state_dict().items()}
    state.update({f"text_encoder.{k}": v for k, v in ref.text_encoder.state_dict().items()})
    torch.save({"state_dict": state}, tmp_path / "ModelT2V.pth")
    comps, source = load_components(released_checkpoint=str(tmp_path / "ModelT2V.pth"), sd_base=str(sd))
    assert source["kind"] == "released"
    for (name, got), want in zip(comps.unet.state_dict().items(), ref.unet.state_dict().values()):
        torch.testing.assert_close(got, want, msg=name)
