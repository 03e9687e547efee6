"""The LAION aesthetic predictor's form: an MLP on an L2-normalised CLIP image embedding -> a score (~1-10).

The released head (`sac+logos+ava1-l14-linearMSE.pth`, for ViT-L/14 embeddings of 768 dims) is a state dict of
`layers.{0,2,4,6,7}.{weight,bias}`: Linear(D,1024) Dropout Linear(1024,128) Dropout Linear(128,64) Dropout
Linear(64,16) Linear(16,1). We rebuild that stack with the sizes read from the file, so a tiny head of the same
form (tests) loads through the same code. Files are read without unpickling code (`weights_only`, safetensors).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

LINEAR_INDICES = (0, 2, 4, 6, 7)  # positions of the Linear layers in the LAION nn.Sequential
DROPOUTS = {1: 0.2, 3: 0.2, 5: 0.1}


class AestheticHead(nn.Module):
    """LAION's module: its only submodule is `layers`, so its state-dict keys are `layers.N.*`."""

    def __init__(self, layers: nn.Sequential):
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_mlp(sizes: list[int]):
    """sizes: [D, h1, h2, h3, h4, 1] -> the LAION Sequential (dropouts are inactive at inference)."""
    if len(sizes) != len(LINEAR_INDICES) + 1:
        raise ValueError(f"the aesthetic MLP has {len(LINEAR_INDICES)} linear layers: need {len(LINEAR_INDICES) + 1} sizes, got {sizes}")
    layers: list = []
    for i in range(len(LINEAR_INDICES)):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if len(layers) in DROPOUTS:
            layers.append(nn.Dropout(DROPOUTS[len(layers)]))
    return AestheticHead(nn.Sequential(*layers))


def _read_state(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a pickle with code in it, or not a torch file at all
        raise ValueError(f"aesthetic model {path}: not a plain state dict ({type(exc).__name__}: {exc}); "
                         "save it with torch.save(model.state_dict()) or as .safetensors") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def load_aesthetic_mlp(path: str | Path):
    """Load the head from a local file; errors name the file and the keys/shapes that were wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"aesthetic model not found: {path} (models.aesthetic.path); download the LAION "
                                "improved-aesthetic-predictor head once and point the manifest at the file")
    state = _read_state(path)
    want = [f"layers.{i}.{p}" for i in LINEAR_INDICES for p in ("weight", "bias")]
    missing = [k for k in want if k not in state]
    if missing:
        raise ValueError(f"aesthetic model {path}: missing {missing}; expected the LAION MLP's keys {want}")
    sizes = [int(state["layers.0.weight"].shape[1])] + [int(state[f"layers.{i}.weight"].shape[0]) for i in LINEAR_INDICES]
    if sizes[-1] != 1:
        raise ValueError(f"aesthetic model {path}: last layer has {sizes[-1]} outputs, expected 1")
    mlp = build_mlp(sizes)
    mlp.load_state_dict({k: state[k] for k in want}, strict=True)
    return mlp.eval()


def input_dim(mlp) -> int:
    return int(mlp.layers[0].in_features)


def aesthetic_scores(mlp, embeddings: np.ndarray) -> np.ndarray:
    """(N, D) CLIP image embeddings (normalised here, as LAION's predictor expects) -> (N,) scores."""
    emb = np.asarray(embeddings, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[1] != input_dim(mlp):
        raise ValueError(f"aesthetic MLP takes {input_dim(mlp)}-dim CLIP embeddings, got shape {emb.shape}: "
                         "use the CLIP model the head was trained on (LAION's: ViT-L-14)")
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    with torch.inference_mode():
        return mlp(torch.from_numpy(emb)).squeeze(1).numpy().astype(np.float64)
