"""CLIPSIM: the mean, over a video's frames, of the cosine similarity between the CLIP image embedding of
the frame and the CLIP text embedding of its prompt; averaged over videos.

CLIP is an open_clip model built by name (e.g. ViT-B-32) with weights from a local checkpoint file.
Preprocessing is open_clip's own evaluation transform for that model (resize the short side to the model's
image size, centre crop, CLIP mean/std normalisation), applied to every frame; recorded with the result.
Scores are raw cosines (multiply by 100 to compare with papers that report ×100).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch
from PIL import Image


class ClipSimilarity:
    def __init__(self, model_name: str, checkpoint: str | Path, device: str | torch.device = "cpu"):
        import open_clip

        ckpt = Path(checkpoint).expanduser()
        if not ckpt.is_file():
            raise FileNotFoundError(
                f"CLIP ({model_name}): no checkpoint at {ckpt}. Give a local open_clip / OpenAI CLIP weights "
                "file (e.g. open_clip_pytorch_model.bin); weights are never downloaded."
            )
        if open_clip.get_model_config(model_name) is None:
            raise ValueError(
                f"unknown open_clip model {model_name!r}; see open_clip.list_models() "
                "(or register a config with open_clip.add_model_config)"
            )
        self.model, _, self.transform = open_clip.create_model_and_transforms(
            model_name, pretrained=str(ckpt), device=device
        )
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.model_name, self.checkpoint, self.device = model_name, str(ckpt), device

    @torch.no_grad()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        e = self.model.encode_text(self.tokenizer([prompt]).to(self.device)).float()
        return e / e.norm(dim=-1, keepdim=True)

    @torch.no_grad()
    def frame_scores(self, frames: np.ndarray, prompt: str, batch_size: int = 32) -> np.ndarray:
        """Cosine similarity of each frame (uint8 (F, H, W, 3)) with the prompt, float64 (F,)."""
        text = self.text_embedding(prompt)
        scores = []
        for s in range(0, len(frames), batch_size):
            images = torch.stack([self.transform(Image.fromarray(f)) for f in frames[s : s + batch_size]])
            e = self.model.encode_image(images.to(self.device)).float()
            e = e / e.norm(dim=-1, keepdim=True)
            scores.append((e @ text.T).squeeze(1).double().cpu().numpy())
        return np.concatenate(scores)

    def video_score(self, frames: np.ndarray, prompt: str) -> float:
        return float(self.frame_scores(frames, prompt).mean())

    def score(self, videos: Iterable[tuple[np.ndarray, str]], progress=None) -> dict:
        """Mean CLIPSIM over (frames, prompt) pairs, with the per-video scores."""
        per_video = []
        for frames, prompt in videos:
            per_video.append(self.video_score(frames, prompt))
            if progress is not None:
                progress(1)
        if not per_video:
            raise ValueError("CLIPSIM: no videos")
        return {"clipsim": float(np.mean(per_video)), "per_video": per_video, "settings": self.describe()}

    def describe(self) -> dict:
        return {
            "model": self.model_name,
            "checkpoint": self.checkpoint,
            "frames": "all frames of each video, scores averaged",
            "preprocess": repr(self.transform),
            "score": "cosine similarity (not x100)",
        }
