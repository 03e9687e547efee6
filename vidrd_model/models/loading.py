"""Strict state-dict loading with errors that say what did not match, and the released checkpoint's
container format."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import torch


class CheckpointMismatchError(RuntimeError):
    """A state dict whose names or shapes differ from the model it is loaded into."""


def _preview(keys: Iterable[str], limit: int = 20) -> str:
    keys = sorted(keys)
    shown = "\n    ".join(keys[:limit])
    more = f"\n    ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{len(keys)}:\n    {shown}{more}"


def mismatch_report(missing=(), unexpected=(), shape_mismatches=()) -> str:
    parts = []
    if missing:
        parts.append(f"missing keys ({_preview(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({_preview(unexpected)}")
    if shape_mismatches:
        parts.append(f"shape mismatches ({_preview(shape_mismatches)}")
    return "\n  ".join(parts)


def load_state_dict_strict(
    model: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    allowed_missing=None,
) -> list[str]:
    """Copy ``state_dict`` into ``model``; raise :class:`CheckpointMismatchError` naming every missing,
    unexpected or wrongly shaped key. ``allowed_missing(key) -> bool`` marks keys that may stay at their
    initialisation (e.g. new temporal layers when inflating); the missing ones are returned."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    not_allowed = [k for k in missing if allowed_missing is None or not allowed_missing(k)]
    if not_allowed or unexpected or shapes:
        raise CheckpointMismatchError(
            f"{source} does not match {type(model).__name__}:\n  "
            + mismatch_report(not_allowed, unexpected, shapes)
        )
    model.load_state_dict(state_dict, strict=False)
    return missing


def is_temporal_key(key: str) -> bool:
    """Parameters VidRD adds to Stable Diffusion (temporal convs, temporal attention and its norm)."""
    return ".temp_convs." in key or ".temp_attn." in key or ".temp_norm." in key


def split_prefixed(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Entries whose key starts with ``prefix + '.'``, with that prefix removed."""
    p = prefix + "."
    return {k[len(p):]: v for k, v in state_dict.items() if k.startswith(p)}


def read_released_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of the authors' ``ModelT2V.pth`` (a PyTorch Lightning checkpoint whose keys
    are prefixed ``unet.`` and ``text_encoder.``); a bare state dict is accepted too. Read with
    ``torch.load(weights_only=True)`` only: a checkpoint is a pickle, and an arbitrary pickle runs code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"released VidRD checkpoint not found: {path}. Download ModelT2V.pth from the authors' release "
            "and pass its local path."
        )
    try:
        # mmap (no copy of a multi-GB file in memory) exists only for the zip format of torch >= 1.6
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as err:  # noqa: BLE001 - re-raised with what to do
        raise RuntimeError(
            f"refused to read {path}: torch.load(weights_only=True) will not load it ({err}). vidrd never unpickles "
            "objects other than tensors and plain containers. On a machine where you trust the file, keep only its "
            "weights: python -c \"import torch; c = torch.load('ModelT2V.pth', weights_only=False); "
            "torch.save({'state_dict': c['state_dict']}, 'ModelT2V_weights.pth')\" and pass that file."
        ) from err
    state_dict = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state_dict, Mapping) or not any(k.startswith("unet.") for k in state_dict):
        raise CheckpointMismatchError(
            f"{path} is not in the released VidRD format: expected a dict with 'state_dict' whose keys start "
            "with 'unet.' (and 'text_encoder.')"
        )
    return dict(state_dict)
