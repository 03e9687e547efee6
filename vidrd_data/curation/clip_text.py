"""Caption embeddings from the same open_clip model that embeds the frames (models.clip)."""

from __future__ import annotations

import numpy as np


def embed_texts(embedder, texts: list[str]) -> np.ndarray:
    """(N, D) L2-normalised text embeddings with `embedder` (an OpenClipEmbedder): its model, its tokenizer."""
    import open_clip
    import torch

    tok = getattr(embedder, "_tokenizer", None)
    if tok is None:
        # the architecture's own tokenizer (its config names an HF one, else open_clip's bundled BPE: no download)
        tok = embedder._tokenizer = open_clip.get_tokenizer(embedder.spec["name"])
    with torch.inference_mode():
        feats = embedder.model.encode_text(tok(list(texts)).to(embedder.device)).float().cpu().numpy()
    return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
