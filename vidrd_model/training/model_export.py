"""Write a complete, sampler-loadable model folder: the base model's folders with the trained one replaced."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..pipeline_io import resolve_model_folder


def export_model_folder(base: str, out_dir: str | Path, component: str, save_component) -> Path:
    """Copy `base` except `component`, then `save_component(out_dir / component)`; written atomically."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    src = resolve_model_folder(base)
    # copytree follows symlinks by default: a hub-cache snapshot's links into its blob store become files.
    shutil.copytree(src, tmp, ignore=lambda d, names: [component] if Path(d) == src else [])
    save_component(tmp / component)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir
