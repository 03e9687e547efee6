"""Training state on disk without pickle: every tensor in one safetensors file, the rest as JSON.

A nested state (dicts, lists, tuples, numbers, strings, None, tensors) is split into a JSON skeleton, in which
each tensor is replaced by ``{"__tensor__": name}``, and a flat ``{name: tensor}`` map. Tuples and dicts with
non-string keys (the optimizer's ``{param index: state}``) are tagged so they come back as they were.
Reading uses `safetensors` and `json` only: a crafted file cannot run code. The legacy ``training_state.pt``
is read with ``torch.load(weights_only=True)`` and refused (with the reason) when it holds anything else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..checkpoint_layout import LEGACY_STATE, STATE_JSON, STATE_TENSORS

FORMAT_VERSION = 1


class UnsafeCheckpointError(RuntimeError):
    """A training state that cannot be read without running code from the file."""


def split_state(obj: Any, tensors: dict[str, torch.Tensor], path: str = "s") -> Any:
    """The JSON skeleton of `obj`; its tensors are added to `tensors` under their path in the state."""
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"  # numbered: parameter names hold dots, paths could collide
        # safetensors wants contiguous, unshared storage: a clone of each tensor is both
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and "__tensor__" not in obj:
            return {k: split_state(v, tensors, f"{path}.{k}") for k, v in obj.items()}
        return {"__items__": [[k, split_state(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [split_state(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [split_state(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"training state entry {path} is a {type(obj).__name__}; only tensors, numbers, strings, "
                    "None and dicts/lists/tuples of them are saved (convert it to a tensor first)")


def join_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, list):
        return [join_state(v, tensors) for v in skeleton]
    if isinstance(skeleton, dict):
        if "__tensor__" in skeleton:
            return tensors[skeleton["__tensor__"]]
        if "__tuple__" in skeleton:
            return tuple(join_state(v, tensors) for v in skeleton["__tuple__"])
        if "__items__" in skeleton:
            return {k: join_state(v, tensors) for k, v in skeleton["__items__"]}
        return {k: join_state(v, tensors) for k, v in skeleton.items()}
    return skeleton


def save_training_state(folder: str | Path, state: dict) -> None:
    folder = Path(folder)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = split_state(state, tensors)
    save_file(tensors, str(folder / STATE_TENSORS))
    tmp = folder / (STATE_JSON + ".tmp")
    tmp.write_text(json.dumps({"format_version": FORMAT_VERSION, "state": skeleton}))
    os.replace(tmp, folder / STATE_JSON)  # the JSON last: its presence means the state is complete


def load_training_state(folder: str | Path) -> dict:
    """Read a checkpoint's training state without unpickling anything."""
    folder = Path(folder)
    if (folder / STATE_JSON).is_file():
        doc = json.loads((folder / STATE_JSON).read_text())
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder / STATE_JSON}: format_version {doc.get('format_version')!r}; this version "
                             f"of vidrd reads {FORMAT_VERSION}")
        tensors = load_file(str(folder / STATE_TENSORS)) if (folder / STATE_TENSORS).is_file() else {}
        return join_state(doc["state"], tensors)
    legacy = folder / LEGACY_STATE
    try:
        return torch.load(legacy, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder}: no {STATE_JSON} (nor {LEGACY_STATE}): not a training checkpoint") from None
    except Exception as err:  # noqa: BLE001 - the unpickler's refusal, re-raised with what to do
        raise UnsafeCheckpointError(
            f"refused to load {legacy}: it is a pickle that torch.load(weights_only=True) will not read ({err}). "
            f"vidrd never unpickles arbitrary objects, since a crafted checkpoint runs code. Checkpoints of this "
            f"version store {STATE_JSON} + {STATE_TENSORS}; start a new run, or resume from one of those."
        ) from err
