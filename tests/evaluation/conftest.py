import json
from fractions import Fraction

import av
import numpy as np
import pytest
import torch


class TinyI3D(torch.nn.Module):
    """Same call convention as the StyleGAN-V I3D TorchScript: forward(x, rescale, resize, return_features)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 8, kernel_size=3, stride=2)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x, rescale: bool = False, resize: bool = False, return_features: bool = False):
        h = torch.relu(self.conv(x)).mean(dim=(2, 3, 4))
        if return_features:
            return h
        return self.head(h)


class TinyC3D(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 4, kernel_size=3, stride=2)
        self.fc = torch.nn.Linear(4, 101)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))


@pytest.fixture(scope="session")
def torchscript_files(tmp_path_factory):
    """A tiny random I3D (scripted) and C3D (traced) saved as TorchScript files."""
    d = tmp_path_factory.mktemp("ts")
    torch.manual_seed(0)
    torch.jit.script(TinyI3D()).save(str(d / "i3d.pt"))
    torch.jit.trace(TinyC3D(), torch.zeros(1, 3, 16, 112, 112)).save(str(d / "c3d.pt"))
    return d


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """(model name, checkpoint path) of a tiny random open_clip model registered under a test name."""
    import open_clip

    d = tmp_path_factory.mktemp("clip")
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (d / "cfg").mkdir()
    (d / "cfg" / "vidrd-tiny-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d / "cfg")
    torch.manual_seed(0)
    model = open_clip.create_model("vidrd-tiny-clip")
    torch.save(model.state_dict(), d / "tiny_clip.bin")
    return "vidrd-tiny-clip", d / "tiny_clip.bin"


def write_avi(path, frames: np.ndarray, fps: int = 25) -> None:
    """An MPEG-4 Part 2 .avi like UCF-101's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as c:
        s = c.add_stream("mpeg4", rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())


@pytest.fixture(scope="session")
def fake_ucf101(tmp_path_factory):
    """UCF-101-shaped folder: 2 classes; groups 8+ are split-1 training videos, group 1 a test video."""
    root = tmp_path_factory.mktemp("ucf") / "UCF-101"
    rng = np.random.default_rng(0)
    names = ["v_Archery_g08_c01", "v_Archery_g09_c01", "v_Archery_g01_c01", "v_Biking_g10_c02"]
    for name in names:
        cls = name.split("_")[1]
        write_avi(root / cls / f"{name}.avi", rng.integers(0, 256, (12, 48, 64, 3), dtype=np.uint8))
    return root


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Tiny models: one intra-op thread (see tests/conftest.py)."""
