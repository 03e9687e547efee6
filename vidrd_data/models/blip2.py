"""BLIP-2 captioner on transformers' `Blip2ForConditionalGeneration` + `Blip2Processor`.

The model is a local directory (anything saved with `save_pretrained`, e.g. the tiny test model) or a hub id
looked up in the local Hugging Face cache only (`snapshot_download(..., local_files_only=True)`): a build
never downloads weights. Any BLIP-2 checkpoint works (OPT or Flan-T5 language model).

Device "auto": CUDA when present, in fp16 there (dtype "auto"), else CPU in fp32.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "Salesforce/blip2-opt-2.7b"
# config.json, plus the processor's config (older checkpoints: preprocessor_config.json; transformers 5 saves
# processor_config.json)
REQUIRED_FILES = ("config.json", ("preprocessor_config.json", "processor_config.json"))


class ModelNotFound(FileNotFoundError):
    """The model is neither a local directory nor in the local Hugging Face cache."""


def _how_to_provide(model: str) -> str:
    return (f"provide it: on a machine with network run `hf download {model}` (or `huggingface-cli download "
            f"{model}`) and copy the cache (HF_HOME) here, or set models.blip2.path in the manifest to a local "
            "directory made with save_pretrained")


def resolve_blip2(model: str | None, base_dir: str | os.PathLike = ".") -> Path:
    """A local directory holding the model: `model` as a path (absolute or relative to `base_dir`), else as a
    hub id in the local cache. Raises ModelNotFound naming the model, where it looked and how to provide it."""
    model = model or DEFAULT_MODEL
    local = Path(model).expanduser()
    local = local if local.is_absolute() else Path(base_dir) / local
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") != 1 or local.exists()
    if local.is_dir():
        path = local
    elif looks_like_path:
        raise ModelNotFound(f"BLIP-2 model {model!r} not found: no directory {local.resolve()}; "
                            + _how_to_provide(DEFAULT_MODEL if model.count("/") != 1 else model))
    else:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            path = Path(snapshot_download(model, local_files_only=True))
        except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
            raise ModelNotFound(
                f"BLIP-2 model {model!r} not found: not a local directory ({local.resolve()}) and not in the Hugging "
                f"Face cache ({constants.HF_HUB_CACHE}; HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}); "
                + _how_to_provide(model)) from None
    missing = [" or ".join(f) if isinstance(f, tuple) else f for f in REQUIRED_FILES
               if not any((path / name).is_file() for name in ((f,) if isinstance(f, str) else f))]
    if missing:
        raise ModelNotFound(f"BLIP-2 model {model!r} at {path} is incomplete (missing {'; '.join(missing)}); "
                            + _how_to_provide(model if model.count("/") == 1 else DEFAULT_MODEL))
    return path


def pick_device(device: str = "auto", dtype: str = "auto"):
    import torch

    dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    if dtype == "auto":
        dt = torch.float16 if dev.startswith("cuda") else torch.float32
    else:
        dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    return dev, dt


class Blip2Captioner:
    """Images (uint8 HxWx3) -> captions, `batch_size` images per forward pass."""

    def __init__(self, path: str | os.PathLike, *, device: str = "auto", dtype: str = "auto", prompt: str = "",
                 batch_size: int = 16, max_new_tokens: int = 30, min_new_tokens: int = 0, num_beams: int = 1,
                 repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0):
        import torch
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        self.device, self.dtype = pick_device(device, dtype)
        self.processor = Blip2Processor.from_pretrained(str(path))
        self.model = Blip2ForConditionalGeneration.from_pretrained(str(path), dtype=self.dtype).to(self.device).eval()
        self.prompt = prompt or ""
        self.batch_size = max(1, int(batch_size))
        self.generate_kwargs = {"max_new_tokens": int(max_new_tokens), "num_beams": int(num_beams),
                                "do_sample": False}
        if min_new_tokens:
            self.generate_kwargs["min_new_tokens"] = int(min_new_tokens)
        if repetition_penalty != 1.0:
            self.generate_kwargs["repetition_penalty"] = float(repetition_penalty)
        if no_repeat_ngram_size:
            self.generate_kwargs["no_repeat_ngram_size"] = int(no_repeat_ngram_size)
        self._torch = torch

    def caption(self, images: Sequence[np.ndarray]) -> list[str]:
        out: list[str] = []
        for i in range(0, len(images), self.batch_size):
            out.extend(self._caption_batch(images[i:i + self.batch_size]))
        return out

    def _caption_batch(self, images: Sequence[np.ndarray]) -> list[str]:
        torch = self._torch
        inputs = self.processor(images=list(images), text=[self.prompt] * len(images), return_tensors="pt")
        inputs = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                  for k, v in inputs.items()}
        with torch.inference_mode():
            ids = self.model.generate(**inputs, **self.generate_kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        if not self.model.config.is_encoder_decoder and ids.shape[1] >= prompt_len \
                and torch.equal(ids[:, :prompt_len].cpu(), inputs["input_ids"].cpu()):
            ids = ids[:, prompt_len:]  # decoder-only LMs return the prompt first
        return [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]
