"""Write a complete, sampler-loadable model folder: the base model's folders with the trained one replaced."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def resolve_model_folder(path_or_id: str) -> Path:
    """A local folder, or a hub id already in the local cache (never downloads)."""
    if os.path.isdir(path_or_id):
        return Path(path_or_id)
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(path_or_id, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - re-raised with advice
        raise FileNotFoundError(
            f"model {path_or_id!r} not found as a local folder nor in the Hugging Face cache "
            f"({os.environ.get('HF_HOME', '~/.cache/huggingface')}); pass a local VidRD model folder "
            "(e.g. from `vidrd_model.testing.make_tiny_vidrd` or an inflated SD 2.1-base)"
        ) from exc


def export_model_folder(base: str, out_dir: str | Path, component: str, save_component) -> Path:
    """Copy `base` except `component`, then `save_component(out_dir / component)`; written atomically."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    src = resolve_model_folder(base)
    # symlinks=False: a hub cache snapshot is made of links into its blob store; copy the files themselves.
    shutil.copytree(src, tmp, ignore=lambda d, names: [component] if Path(d) == src else [])
    save_component(tmp / component)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir
