import numpy as np
import pytest
import torch

from vidrd_model.evaluation.feature_models import (
    C3D_PREPROCESS,
    I3D_PREPROCESS,
    Preprocess,
    load_c3d,
    load_i3d,
    read_video,
)


def _videos(n, frames=16, h=40, w=48, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(frames, h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_tiny_i3d_loads_from_user_path_and_returns_features(torchscript_files):
    i3d = load_i3d(torchscript_files / "i3d.pt")
    assert i3d.call_kwargs == {"rescale": False, "resize": False, "return_features": True}
    seen = []
    feats = i3d.extract(_videos(5), batch_size=2, progress=seen.append)
    assert feats.shape == (5, 8) and feats.dtype == np.float64
    assert seen == [2, 2, 1]
    assert i3d.describe()["preprocess"]["resize"] == (224, 224)


def test_tiny_c3d_loads_and_gives_101_logits(torchscript_files):
    c3d = load_c3d(torchscript_files / "c3d.pt")
    assert c3d.call_kwargs == {}
    logits = c3d.extract(_videos(3, h=120, w=160), batch_size=4)
    assert logits.shape == (3, 101)


def test_missing_or_bad_network_files_teach(tmp_path):
    with pytest.raises(FileNotFoundError, match="I3D .*never downloaded"):
        load_i3d(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a TorchScript file"):
        load_c3d(bad)


def test_preprocess_shapes_ranges_and_crop():
    v = np.full((20, 240, 320, 3), 255, dtype=np.uint8)
    x = I3D_PREPROCESS(v)
    assert x.shape == (3, 16, 224, 224) and torch.allclose(x, torch.ones_like(x), atol=1e-4)
    y = C3D_PREPROCESS(v)
    assert y.shape == (3, 16, 112, 112)
    torch.testing.assert_close(y[:, 0, 0, 0], 255 - torch.tensor([101.41, 97.66, 90.25]), atol=1e-3, rtol=0)
    # the centre crop takes the middle: a marker column at the centre survives
    v2 = np.zeros((16, 128, 171, 3), dtype=np.uint8)
    v2[:, :, 85] = 255
    z = Preprocess(16, (128, 171), (112, 112), "[-1, 1]")(v2)
    assert z[0, 0, 0].argmax().item() == 85 - (171 - 112) // 2
    with pytest.raises(ValueError, match="generate more clips"):
        I3D_PREPROCESS(v[:8])


def test_read_video_roundtrip(tmp_path):
    from vidrd_model.sampling.writer import VideoWriter

    frames = np.zeros((10, 32, 48, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(10, dtype=np.uint8)[:, None, None] * 20
    with VideoWriter(tmp_path / "v.mp4", fps=8, sidecar=False) as w:
        w.write_clip(frames)
    got = read_video(tmp_path / "v.mp4")
    assert got.shape == (10, 32, 48, 3)
    assert np.abs(got[:, :, :, 0].astype(int).mean(axis=(1, 2)) - frames[:, 0, 0, 0]).max() < 6
    assert read_video(tmp_path / "v.mp4", max_frames=3, stride=2).shape[0] == 3


def test_clipsim_with_tiny_open_clip(tiny_clip, tmp_path):
    from vidrd_model.evaluation.clipsim import ClipSimilarity

    name, ckpt = tiny_clip
    scorer = ClipSimilarity(name, ckpt)
    frames = _videos(1, frames=3, h=40, w=40)[0]
    res = scorer.score([(frames, "a dog"), (frames[:2], "a cat")])
    per = scorer.frame_scores(frames, "a dog")
    assert per.shape == (3,) and np.all(np.abs(per) <= 1 + 1e-6)
    assert res["per_video"][0] == pytest.approx(per.mean(), rel=1e-6)
    assert res["clipsim"] == pytest.approx(np.mean(res["per_video"]))
    assert res["settings"]["model"] == name
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        ClipSimilarity(name, tmp_path / "missing.bin")
