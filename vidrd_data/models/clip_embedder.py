"""Image embedders for shot similarity: open_clip models (real or tiny, same loading path) and a
model-free colour-histogram embedder.

Every embedder maps uint8 RGB frames (N, H, W, 3) to L2-normalised float32 vectors (N, D), so a dot
product is the cosine similarity the segmentation rules compare against their thresholds.

open_clip spec (the manifest's `models.clip` block):
  name: an open_clip architecture (ViT-L-14, ...) or the name of a custom config given by `config`
  checkpoint: a local weights file, or a pretrained tag (e.g. `openai`) looked up in the local cache
  config: optional path to a model-config json (its file name, minus .json, is the architecture name);
          a `<name>.json` next to the checkpoint file is found without it
  cache_dir: optional open_clip / Hugging Face cache folder
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vidrd_data.models.service import ModelNotFound, looks_like_file, pick_device, pick_dtype, resolve_model_file


class ImageEmbedder(Protocol):
    name: str

    def embed(self, images: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ColorHistogramEmbedder:
    """Joint RGB histogram, square-rooted (Hellinger): dot product = Bhattacharyya coefficient.

    Needs no weights and ignores layout, so two camera angles on the same set score high while a different
    place or lighting scores low: a cheap stand-in for CLIP where no CLIP model is available.
    """

    name = "color_histogram"

    def __init__(self, bins: int = 8):
        self.bins = int(bins)

    def embed(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        q = (images.astype(np.uint16) * self.bins) >> 8  # 0..bins-1 per channel
        idx = (q[..., 0] * self.bins + q[..., 1]) * self.bins + q[..., 2]
        n = images.shape[0]
        flat = idx.reshape(n, -1)
        hist = np.zeros((n, self.bins ** 3), dtype=np.float32)
        for i in range(n):
            hist[i] = np.bincount(flat[i], minlength=self.bins ** 3)
        return _normalise(np.sqrt(hist / np.maximum(hist.sum(1, keepdims=True), 1)))

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "bins": self.bins}


def resolve_clip_spec(spec: dict[str, Any], base_dir: str | os.PathLike = ".") -> dict[str, Any]:
    """The spec with its local files (checkpoint, config) resolved against the build's base dir."""
    return {**spec, **{k: resolve_model_file(spec[k], base_dir) for k in ("checkpoint", "config") if spec.get(k)}}


def check_clip_spec(spec: dict[str, Any]) -> None:
    """Fail before any work when the CLIP model cannot be found; say where we looked and how to fix it."""
    if not spec or not spec.get("name"):
        raise ValueError("models.clip.name is required for embed_shots(model: clip), e.g. "
                         "{name: ViT-L-14, checkpoint: /models/clip-vit-l-14.bin}; "
                         "or set the stage's model: color_histogram to segment without CLIP")
    cfg = spec.get("config")
    if cfg and not Path(cfg).is_file():
        raise FileNotFoundError(f"models.clip.config not found: {cfg}")
    ckpt = spec.get("checkpoint")
    if looks_like_file(ckpt) and not Path(ckpt).is_file():
        raise ModelNotFound(f"CLIP checkpoint not found: {ckpt} (models.clip.checkpoint); download it "
                            f"once (e.g. open_clip's release for {spec['name']}) and point the manifest at the file")


def _config_beside(spec: dict[str, Any]) -> str | None:
    """A custom architecture's `<name>.json` saved next to its checkpoint (how tiny and fine-tuned models ship)."""
    ckpt = spec.get("checkpoint")
    if ckpt and Path(ckpt).is_file():
        candidate = Path(ckpt).parent / f"{spec['name']}.json"
        if candidate.is_file():
            return str(candidate)
    return None


class OpenClipEmbedder:
    name = "clip"

    def __init__(self, spec: dict[str, Any], device: str | None = "auto", batch_size: int = 64):
        import open_clip
        import torch

        check_clip_spec(spec)
        self.spec = dict(spec)
        self.device = pick_device(device or spec.get("device"))
        dtype = pick_dtype(spec.get("dtype"), self.device)
        precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")  # open_clip's names
        self.batch_size = int(spec.get("batch_size", batch_size))
        config = spec.get("config") or _config_beside(spec)
        if config:
            open_clip.add_model_config(config)  # registers the json's stem as an architecture name
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec["name"], pretrained=spec.get("checkpoint"), cache_dir=spec.get("cache_dir"),
            device=self.device, precision=precision)
        self.model = model.eval()
        self.preprocess = preprocess
        self._torch = torch

    def embed(self, images: np.ndarray) -> np.ndarray:
        from PIL import Image

        torch = self._torch
        out = []
        dtype = next(self.model.parameters()).dtype
        for i in range(0, len(images), self.batch_size):
            batch = torch.stack([self.preprocess(Image.fromarray(im)) for im in images[i:i + self.batch_size]])
            with torch.inference_mode():
                feats = self.model.encode_image(batch.to(self.device, dtype))
            out.append(feats.float().cpu().numpy())
        return _normalise(np.concatenate(out) if out else np.zeros((0, 1), np.float32))

    def describe(self) -> dict[str, Any]:
        return {"model": "clip", "name": self.spec.get("name"), "checkpoint": str(self.spec.get("checkpoint")),
                "device": self.device}


_SHARED_CLIP: dict[str, OpenClipEmbedder] = {}


def shared_open_clip(spec: dict[str, Any], device: str | None = "auto") -> OpenClipEmbedder:
    """One open_clip instance per process and spec: embed_shots, clip_align and aesthetic load it once."""
    import json

    # the weights and where they run identify the instance (batch size, pool size and the like do not)
    ident = {k: spec.get(k) for k in ("name", "checkpoint", "config", "cache_dir", "dtype")}
    key = json.dumps([ident, pick_device(device or spec.get("device"))], sort_keys=True, default=str)
    if key not in _SHARED_CLIP:
        _SHARED_CLIP[key] = OpenClipEmbedder(spec, device=device)
    return _SHARED_CLIP[key]


def load_embedder(kind: str, spec: dict[str, Any] | None = None, device: str | None = "auto",
                  bins: int = 8) -> ImageEmbedder:
    if kind == "clip":
        return shared_open_clip(spec or {}, device=device)
    if kind == "color_histogram":
        return ColorHistogramEmbedder(bins=bins)
    raise ValueError(f"embedder must be 'clip' or 'color_histogram', got {kind!r}")
