"""Write a complete, sampler-loadable model folder: the base model's folders with the trained one replaced."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..pipeline_io import resolve_model_folder


def export_model_folder(base: str, out_dir: str | Path, component: str, save_component) -> Path:
    """The base model with `save_component(out_dir / component)` in place of its `component`; written atomically.

    A VidRD base is copied as it is; an SD 2.x base (training started from SD directly) is inflated and saved
    as a VidRD folder first, so that the result is a VidRD folder either way."""
    from ..pipeline_vidrd import register_in_folder
    from ..sd_inflate import inflate_sd2, is_sd2_folder

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    src = resolve_model_folder(base)
    if is_sd2_folder(src):
        from ..pipeline_io import save_vidrd

        save_vidrd(inflate_sd2(src), tmp)
        shutil.rmtree(tmp / component)
    else:
        # copytree follows symlinks by default: a hub-cache snapshot's links into its blob store become files.
        shutil.copytree(src, tmp, ignore=lambda d, names: [component] if Path(d) == src else [])
        if (tmp / "model_index.json").is_file():
            register_in_folder(tmp)  # older folders named the pipeline class the way diffusers cannot resolve
    save_component(tmp / component)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir
