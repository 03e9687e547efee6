"""BLIP-2 captioner on transformers' `Blip2ForConditionalGeneration` + `Blip2Processor`.

The model is a local directory (anything saved with `save_pretrained`, e.g. the tiny test model) or a hub id
looked up in the local Hugging Face cache only (`snapshot_download(..., local_files_only=True)`): a build
never downloads weights. Any BLIP-2 checkpoint works (OPT or Flan-T5 language model).

Path, device and dtype are chosen by vidrd_data.models.service ("auto": CUDA in fp16 when present, else CPU).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidrd_data.models.service import ModelNotFound, pick_device, pick_dtype, resolve_model_dir

__all__ = ["Blip2Captioner", "ModelNotFound", "resolve_blip2"]

DEFAULT_MODEL = "Salesforce/blip2-opt-2.7b"
# config.json, plus the processor's config (older checkpoints: preprocessor_config.json; transformers 5 saves
# processor_config.json)
REQUIRED_FILES = ("config.json", ("preprocessor_config.json", "processor_config.json"))


def _how_to_provide(model: str) -> str:
    return (f"provide it: on a machine with network run `hf download {model}` (or `huggingface-cli download "
            f"{model}`) and copy the cache (HF_HOME) here, or set models.blip2.path in the manifest to a local "
            "directory made with save_pretrained")


def resolve_blip2(model: str | None, base_dir: str | os.PathLike = ".") -> Path:
    """A local directory holding the model: `model` as a path (absolute or relative to `base_dir`), else as a
    hub id in the local cache (models.service.resolve_model_dir). Raises ModelNotFound."""
    model = model or DEFAULT_MODEL
    return resolve_model_dir(model, base_dir, label="BLIP-2", setting="models.blip2.path", required=REQUIRED_FILES,
                             how_to=_how_to_provide(model if model.count("/") == 1 else DEFAULT_MODEL))


class Blip2Captioner:
    """Images (uint8 HxWx3) -> captions, `batch_size` images per forward pass."""

    def __init__(self, path: str | os.PathLike, *, device: str = "auto", dtype: str = "auto", prompt: str = "",
                 batch_size: int = 16, max_new_tokens: int = 30, min_new_tokens: int = 0, num_beams: int = 1,
                 repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0):
        import torch
        from transformers import Blip2ForConditionalGeneration, Blip2Processor

        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
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
