"""The one place the data side decides how a model is found, where it runs, and what its actor asks Ray for.

- `model_settings`: a model stage's settings, the manifest's `models.<key>` block with the stage's own
  overrides (path, device, dtype, batch size, pool size) on top.
- `resolve_model_dir` / `resolve_model_file`: a local directory or file (absolute, or relative to the
  build's base dir), else a hub id looked up in the local Hugging Face cache only: a build never downloads
  weights. A missing model raises `ModelNotFound` naming the model, where it looked and how to provide it.
- `pick_device` / `pick_dtype`: "auto" is CUDA when present (fp16 there), else CPU in fp32.
- `actor_resources`: what one model actor reserves from Ray (one policy for every model stage).

Every model stage (caption_blip2, caption_minigpt4, caption, embed_shots) and model wrapper goes through
these functions; the model side (`vidrd_model`) keeps its own device helper because it never imports
`vidrd_data`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vidrd_data.stages.base import Resources

SETTINGS = ("path", "device", "dtype", "batch_size", "num_actors")  # a stage's params may override these
_DTYPES = ("float32", "float16", "bfloat16")


class ModelNotFound(FileNotFoundError):
    """The model is neither a local directory/file nor in the local Hugging Face cache."""


def model_settings(models: dict[str, dict[str, Any]], key: str, params: dict[str, Any]) -> dict[str, Any]:
    """models.<key> from the manifest, with the stage's non-null overrides of SETTINGS on top."""
    spec = dict(models.get(key) or {})
    spec.update({k: params[k] for k in SETTINGS if params.get(k) is not None})
    spec.setdefault("key", key)
    return spec


def _local(ref: str, base_dir: str | os.PathLike) -> Path:
    p = Path(ref).expanduser()
    return p if p.is_absolute() else Path(base_dir) / p


def _missing_files(path: Path, required: Iterable[str | tuple[str, ...]]) -> list[str]:
    """Required files not in `path`; a tuple entry means any one of those names."""
    out = []
    for f in required:
        names = (f,) if isinstance(f, str) else tuple(f)
        if not any((path / n).is_file() for n in names):
            out.append(" or ".join(names))
    return out


def resolve_model_dir(ref: str, base_dir: str | os.PathLike = ".", *, label: str, setting: str,
                      required: Sequence[str | tuple[str, ...]] = ("config.json",), how_to: str = "") -> Path:
    """A directory holding the model: `ref` as a local path, else as a hub id (`org/name`) in the local cache.

    label names the model in errors ("BLIP-2"), setting the manifest field that sets it
    ("models.blip2.path"), how_to says how to provide one. Raises ModelNotFound.
    """
    local = _local(ref, base_dir)
    hint = how_to or (f"on a machine with network run `hf download {ref}` and copy the cache (HF_HOME) here, "
                      f"or set {setting} to a local directory made with save_pretrained")
    is_hub_id = not ref.startswith((".", "/", "~")) and ref.count("/") == 1 and not local.exists()
    if local.is_dir():
        path = local
    elif not is_hub_id:
        raise ModelNotFound(f"{label} model {ref!r} ({setting}) not found: no directory {local.resolve()}; {hint}")
    else:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            path = Path(snapshot_download(ref, local_files_only=True))
        except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
            raise ModelNotFound(
                f"{label} model {ref!r} ({setting}) not found: not a local directory ({local.resolve()}) and not "
                f"in the Hugging Face cache ({constants.HF_HUB_CACHE}; "
                f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', 'unset')}); {hint}") from None
    missing = _missing_files(path, required)
    if missing:
        raise ModelNotFound(f"{label} model {ref!r} ({setting}) at {path} is incomplete (missing "
                            f"{'; '.join(missing)}); {hint}")
    return path


def resolve_model_file(ref: str | None, base_dir: str | os.PathLike = ".") -> str | None:
    """A weights/config file: a relative path that exists under the base dir becomes absolute; anything
    else (an absolute path, a pretrained tag such as `openai`) is returned as it is."""
    if not ref:
        return ref
    local = _local(str(ref), base_dir)
    return str(local) if local.is_file() else str(ref)


def looks_like_file(ref: str | None) -> bool:
    """A checkpoint reference that names a file (rather than a pretrained tag)."""
    return bool(ref) and (os.sep in str(ref) or Path(str(ref)).suffix in (".bin", ".pt", ".pth", ".safetensors"))


def pick_device(device: str | None = "auto") -> str:
    """"auto"/None: cuda when a GPU is visible, else cpu; anything else ("cpu", "cuda:1") as given."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str | None, device: str):
    """"auto"/None: float16 on CUDA, float32 elsewhere; else the named torch dtype."""
    import torch

    if dtype in (None, "auto"):
        return torch.float16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be auto or one of {', '.join(_DTYPES)}, got {dtype!r}")
    return getattr(torch, dtype)


def actor_resources(device: str | None = "auto") -> "Resources":
    """One model actor's reservation: 1 GPU (+1 CPU) when the cluster has one and the device is not pinned
    to cpu. Without a GPU, on small nodes (< 8 CPUs) an actor reserves no CPU: Ray holds an actor's CPUs
    for its lifetime, and a recipe's actor pools (embed_shots, caption) would leave a 2-core node no room
    for the 1-CPU task stages between them (a hang; any fractional share hangs a 1-CPU node). Sharing
    cores is only slower. Read on the driver after ray.init; before it, the plain default."""
    import ray

    from vidrd_data.stages.base import Resources  # here: the stages package imports this module's users

    if not ray.is_initialized():
        return Resources(num_cpus=1)
    if ray.cluster_resources().get("GPU", 0) >= 1 and device != "cpu":
        return Resources(num_cpus=1, num_gpus=1)
    node_cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    return Resources(num_cpus=1 if node_cpus and min(node_cpus) >= 8 else 0)
