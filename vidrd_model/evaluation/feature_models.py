"""Feature networks for the video metrics, loaded from TorchScript files the user gives, and the exact
preprocessing each one gets. Every number is recorded with every result (`Preprocess.to_dict`).

| metric | network (TorchScript)               | frames | resize (H×W)       | crop  | values                     | output            |
|--------|-------------------------------------|--------|--------------------|-------|----------------------------|-------------------|
| FVD    | I3D, Kinetics-400 (the `i3d_torchscript.pt` of the StyleGAN-V / DIGAN FVD code) | 16 | 224×224 | none | [-1, 1] | 400-d features (logits before softmax) |
| IS     | C3D fine-tuned on UCF-101           | 16     | 128×171            | 112×112 centre | [0, 255] − channel mean (RGB 101.41, 97.66, 90.25; Sports-1M) | 101 class logits  |

Frames: the first `num_frames` consecutive frames of each video (a shorter video is an error: generate
more clips or lower `num_frames`, and report it). Resizing: `torch.nn.functional.interpolate`, bilinear,
`antialias=True`, `align_corners=False`, on float RGB in [0, 255]. The networks take (batch, 3, frames, H, W).
If the TorchScript module's forward takes `rescale` / `resize` / `return_features` (the StyleGAN-V I3D does),
it is called with rescale=False, resize=False, return_features=True: we did both ourselves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Preprocess:
    """How raw uint8 RGB videos (T, H, W, 3) become a network's input (3, num_frames, h, w)."""

    num_frames: int
    resize: tuple[int, int]  # (H, W) after resizing
    crop: Optional[tuple[int, int]]  # centre crop (H, W) after resizing, or None
    value_range: str  # "[-1, 1]" or "[0, 255] - mean"
    mean: Optional[tuple[float, float, float]] = None  # RGB, subtracted when value_range is "[0, 255] - mean"
    frame_selection: str = "first consecutive"
    interpolation: str = "bilinear, antialias=True, align_corners=False"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __call__(self, video: np.ndarray) -> torch.Tensor:
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"a video must be uint8 (frames, H, W, 3) RGB; got shape {video.shape}")
        if video.shape[0] < self.num_frames:
            raise ValueError(
                f"video has {video.shape[0]} frames, this network's preprocessing takes {self.num_frames}: "
                "generate more clips, or lower the frame count and report it with the result"
            )
        x = torch.from_numpy(np.ascontiguousarray(video[: self.num_frames])).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False, antialias=True)
        if self.crop is not None:
            ch, cw = self.crop
            top, left = (x.shape[2] - ch) // 2, (x.shape[3] - cw) // 2
            x = x[:, :, top : top + ch, left : left + cw]
        if self.value_range == "[-1, 1]":
            x = x / 127.5 - 1.0
        elif self.value_range == "[0, 255] - mean":
            x = x - torch.tensor(self.mean, dtype=x.dtype).view(1, 3, 1, 1)
        else:
            raise ValueError(f"unknown value_range {self.value_range!r}")
        return x.permute(1, 0, 2, 3).contiguous()  # (3, T, h, w)


I3D_PREPROCESS = Preprocess(num_frames=16, resize=(224, 224), crop=None, value_range="[-1, 1]")
C3D_PREPROCESS = Preprocess(
    num_frames=16, resize=(128, 171), crop=(112, 112), value_range="[0, 255] - mean", mean=(101.41, 97.66, 90.25)
)


def load_torchscript(path: str | Path, what: str, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """Load a TorchScript network from a local file (never downloaded), in eval mode.

    TRUSTED INPUT ONLY: a TorchScript file is a program (`torch.jit.load` has no weights-only mode), so give
    only files from a source you trust (e.g. the I3D of the StyleGAN-V FVD code, checked against its sha256)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"{what}: no TorchScript file at {p}. Give the path of a TorchScript export "
            f"(torch.jit.save) of the network; weights are never downloaded."
        )
    try:
        module = torch.jit.load(str(p), map_location=device)
    except RuntimeError as exc:
        raise ValueError(f"{what}: {p} is not a TorchScript file ({exc.__class__.__name__}); export it with torch.jit.save") from exc
    return module.eval()


class VideoFeatureNetwork:
    """A TorchScript video network with its preprocessing: videos in, float64 (num_videos, dim) out."""

    def __init__(self, module, preprocess: Preprocess, name: str, device: str | torch.device = "cpu",
                 path: Optional[str] = None):
        self.module, self.preprocess, self.name, self.device, self.path = module, preprocess, name, device, path
        self.call_kwargs = {}
        arg_names = _forward_argument_names(module)
        for key, value in (("rescale", False), ("resize", False), ("return_features", True)):
            if key in arg_names:
                self.call_kwargs[key] = value

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.module(batch.to(self.device), **self.call_kwargs)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.reshape(out.shape[0], -1)

    def extract(self, videos: Iterable[np.ndarray], batch_size: int = 8, progress=None) -> np.ndarray:
        """Features of every video, computed `batch_size` videos at a time; `progress` is called with the
        number of videos done after each batch."""
        feats, batch = [], []
        for video in videos:
            batch.append(self.preprocess(video))
            if len(batch) == batch_size:
                feats.append(self(torch.stack(batch)).double().cpu().numpy())
                batch = []
                if progress is not None:
                    progress(batch_size)
        if batch:
            feats.append(self(torch.stack(batch)).double().cpu().numpy())
            if progress is not None:
                progress(len(batch))
        if not feats:
            raise ValueError(f"{self.name}: no videos to extract features from")
        return np.concatenate(feats)

    def describe(self) -> dict:
        return {"network": self.name, "path": self.path, "call_kwargs": self.call_kwargs,
                "preprocess": self.preprocess.to_dict()}


def _forward_argument_names(module) -> list[str]:
    try:
        return [a.name for a in module.forward.schema.arguments]
    except AttributeError:
        import inspect

        return list(inspect.signature(module.forward).parameters)


def load_i3d(path, device="cpu", preprocess: Preprocess = I3D_PREPROCESS) -> VideoFeatureNetwork:
    """The I3D feature network for FVD (TorchScript at `path`)."""
    return VideoFeatureNetwork(load_torchscript(path, "I3D (FVD)", device), preprocess, "i3d", device, str(path))


def load_c3d(path, device="cpu", preprocess: Preprocess = C3D_PREPROCESS) -> VideoFeatureNetwork:
    """The UCF-101 C3D classifier for IS (TorchScript at `path`, outputs 101 logits)."""
    return VideoFeatureNetwork(load_torchscript(path, "C3D (IS)", device), preprocess, "c3d-ucf101", device, str(path))


# --------------------------------------------------------------------------------------------- reading videos

VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".webm", ".mov", ".gif"}


def read_video(path: str | Path, max_frames: Optional[int] = None, stride: int = 1) -> np.ndarray:
    """Decode a video file (mp4, avi, gif…) with PyAV: uint8 (frames, H, W, 3) RGB, every `stride`-th frame
    from the first, at most `max_frames` of them."""
    import av

    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % stride:
                continue
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"no frames decoded from {path}")
    return np.stack(frames)


def iter_videos(paths: Sequence[str | Path], max_frames: Optional[int] = None, stride: int = 1) -> Iterator[np.ndarray]:
    for p in paths:
        yield read_video(p, max_frames=max_frames, stride=stride)
