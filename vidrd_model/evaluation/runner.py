"""Putting the metrics together: features of generated and real videos, FVD / IS / CLIPSIM, and a result
record that holds every setting that changes the numbers."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .feature_models import VideoFeatureNetwork, iter_videos, read_video
from .frechet import FeatureStatistics, feature_statistics, frechet_distance
from .inception_score import inception_score_from_logits

METRICS = ("fvd", "is", "clipsim")


@dataclass
class GeneratedVideo:
    path: Path
    prompt: Optional[str]


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None, lambda: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="video")
    return bar.update, bar.close


def extract(network: VideoFeatureNetwork, paths: Sequence[Path], batch_size: int, progress: bool,
            stride: int = 1) -> np.ndarray:
    update, close = _progress(len(paths), f"{network.name} features", progress)
    try:
        return network.extract(
            iter_videos(paths, max_frames=network.preprocess.num_frames, stride=stride), batch_size, update
        )
    finally:
        close()


def real_statistics(
    i3d: VideoFeatureNetwork,
    paths: Sequence[Path],
    batch_size: int = 8,
    stride: int = 1,
    cache: Optional[Path] = None,
    progress: bool = True,
) -> tuple[FeatureStatistics, dict]:
    """I3D statistics of real videos (read from `cache` when it was computed with the same settings)."""
    listing = hashlib.sha1("\n".join(sorted(str(p) for p in paths)).encode()).hexdigest()
    weights = Path(i3d.path) if i3d.path else None
    settings = {"videos": len(paths), "videos_sha1": listing, "frame_stride": stride, **i3d.describe(),
                "network_bytes": weights.stat().st_size if weights and weights.is_file() else None}
    if cache is not None and cache.is_file() and cache.with_suffix(".json").is_file():
        if json.loads(cache.with_suffix(".json").read_text()) == settings:
            return FeatureStatistics.load(cache), {**settings, "cache": str(cache), "from_cache": True}
    stats = feature_statistics(extract(i3d, paths, batch_size, progress, stride=stride))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        stats.save(cache)
        if cache.suffix != ".npz":  # np.savez appends .npz
            os.replace(str(cache) + ".npz", cache)
        cache.with_suffix(".json").write_text(json.dumps(settings, indent=2))
    return stats, {**settings, "cache": str(cache) if cache else None, "from_cache": False}


def evaluate_videos(
    videos: Sequence[GeneratedVideo],
    metrics: Sequence[str],
    i3d: Optional[VideoFeatureNetwork] = None,
    c3d: Optional[VideoFeatureNetwork] = None,
    clip=None,
    real_stats: Optional[FeatureStatistics] = None,
    real_settings: Optional[dict] = None,
    batch_size: int = 8,
    is_splits: int = 1,
    progress: bool = True,
) -> dict:
    """The requested metrics of `videos`, with their settings."""
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {METRICS}")
    paths = [v.path for v in videos]
    results: dict = {}
    settings: dict = {"num_generated_videos": len(videos)}
    if "fvd" in metrics:
        if i3d is None or real_stats is None:
            raise ValueError("FVD needs the I3D network (--i3d) and real videos (--real / --real-stats / --ucf-root)")
        fake = feature_statistics(extract(i3d, paths, batch_size, progress))
        results["fvd"] = frechet_distance(fake.mu, fake.sigma, real_stats.mu, real_stats.sigma)
        settings["fvd"] = {**i3d.describe(), "real": real_settings, "num_real_videos": real_stats.count,
                           "num_generated_videos": fake.count}
    if "is" in metrics:
        if c3d is None:
            raise ValueError("IS needs the UCF-101 C3D classifier (--c3d)")
        logits = extract(c3d, paths, batch_size, progress)
        mean, std = inception_score_from_logits(logits, splits=is_splits)
        results["is"], results["is_std"] = mean, std
        settings["is"] = {**c3d.describe(), "splits": is_splits, "num_classes": int(logits.shape[1])}
    if "clipsim" in metrics:
        if clip is None:
            raise ValueError("CLIPSIM needs an open_clip model (--clip-model) and its weights (--clip-checkpoint)")
        missing = [str(v.path) for v in videos if not v.prompt]
        if missing:
            raise ValueError(f"CLIPSIM needs each video's prompt; none found for {missing[:3]} (pass --prompts)")
        update, close = _progress(len(videos), "CLIPSIM", progress)
        try:
            res = clip.score(((read_video(v.path), v.prompt) for v in videos), progress=update)
        finally:
            close()
        results["clipsim"] = res["clipsim"]
        settings["clipsim"] = res["settings"]
    return {"metrics": results, "settings": settings}


def result_record(evaluation: dict, **extra) -> dict:
    import torch

    import vidrd_model

    return {
        **evaluation,
        **extra,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": {"vidrd": getattr(vidrd_model, "__version__", None), "torch": torch.__version__,
                        "python": platform.python_version()},
    }


def write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    os.replace(tmp, path)


def collect_generated(folder: Path, prompts: Optional[dict] = None,
                      prompt_of: Optional[Callable[[Path], Optional[str]]] = None) -> list[GeneratedVideo]:
    """Every .mp4 under `folder` (sorted; unfinished *.partial.mp4 left out); prompt from `prompts` (by file name or relative path) or the mp4's
    metadata (written by `vidrd-model sample`)."""
    from ..sampling.writer import read_mp4_comment

    files = sorted(f for f in Path(folder).rglob("*.mp4") if not f.name.endswith(".partial.mp4"))
    if not files:
        raise FileNotFoundError(f"no .mp4 videos under {folder}")
    out = []
    for f in files:
        rel = str(f.relative_to(folder))
        prompt = None
        if prompts:
            prompt = prompts.get(rel) or prompts.get(f.name) or prompts.get(f.stem)
        if prompt is None and prompt_of is not None:
            prompt = prompt_of(f)
        if prompt is None:
            try:
                prompt = read_mp4_comment(f).get("prompt")
            except (ValueError, OSError):
                prompt = None
        out.append(GeneratedVideo(f, prompt))
    return out
