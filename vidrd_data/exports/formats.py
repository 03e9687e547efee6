"""The four export formats (see the package docstring). Each writes under DEST and returns the main file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from vidrd_data.exports.samples import iter_samples
from vidrd_data.sample_json import SCORE_KEYS


def export_index(output: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    rows = [s.row() for s in iter_samples(output)]
    if not rows:
        raise ValueError(f"{output}: no committed samples to export")
    path = dest / "index.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def _extract_clips(output: str, dest: Path):
    """Write each clip to DEST/clips/KEY.mp4 and yield (sample, absolute clip path)."""
    clips = dest / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for s in iter_samples(output, members=("mp4",)):
        path = clips / f"{s.key}.mp4"
        path.write_bytes(s.members["mp4"])
        yield s, path.resolve()


def export_opensora(output: str, dest: Path) -> Path:
    """Open-Sora's data CSV: one clip file per row; aspect_ratio = height / width, resolution = height * width."""
    rows = []
    for s, path in _extract_clips(output, dest):
        r = s.row()
        rows.append({"path": str(path), "text": s.caption, "num_frames": r["num_frames"], "height": r["height"],
                     "width": r["width"], "aspect_ratio": r["height"] / r["width"], "fps": r["fps"],
                     "resolution": r["height"] * r["width"]})
    if not rows:
        raise ValueError(f"{output}: no committed samples to export")
    path = dest / "opensora.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _iso_duration(seconds: float) -> str:
    """WebVid's duration form, PT00H00M12S (whole seconds, rounded up so a clip never reads as 0 s)."""
    s = max(1, int(-(-float(seconds or 0) // 1)))
    return f"PT{s // 3600:02d}H{s % 3600 // 60:02d}M{s % 60:02d}S"


def export_webvid(output: str, dest: Path) -> Path:
    """WebVid-10M's CSV columns; contentUrl is the extracted clip's file:// URL (video2dataset reads it)."""
    rows = [{"videoid": s.key, "contentUrl": path.as_uri(), "duration": _iso_duration(s.row()["duration"]),
             "page_dir": s.row()["source"], "name": s.caption} for s, path in _extract_clips(output, dest)]
    if not rows:
        raise ValueError(f"{output}: no committed samples to export")
    path = dest / "webvid.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def export_hf(output: str, dest: Path) -> Path:
    """A `datasets` folder (save_to_disk): mp4 as bytes, the poster as an Image, scores as float columns."""
    import tempfile

    from datasets import Dataset, Features, Image, Value

    f64, i64, s = Value("float64"), Value("int64"), Value("string")
    features = Features({"key": s, "caption": s, "caption_source": s, "source": s, "kind": s, "source_id": s,
                         "duration": f64, "num_frames": i64, "fps": f64, "width": i64, "height": i64,
                         "mp4": Value("binary"), "poster": Image(),
                         **{f"score_{k}": f64 for k in SCORE_KEYS}})

    def gen():
        for smp in iter_samples(output, members=("mp4", "jpg")):
            r = smp.row()
            yield {**{k: r[k] for k in features if k in r}, "mp4": smp.members["mp4"],
                   "poster": {"bytes": smp.members["jpg"], "path": None}}

    with tempfile.TemporaryDirectory() as cache:  # Arrow's build cache: not the user's ~/.cache
        ds = Dataset.from_generator(gen, features=features, cache_dir=cache)
        if len(ds) == 0:
            raise ValueError(f"{output}: no committed samples to export")
        if dest.exists() and any(dest.iterdir()):
            if not (dest / "state.json").is_file():  # only ever replace an earlier `datasets` save
                raise ValueError(f"export destination {dest} exists and is not a datasets save: choose another --dest")
            shutil.rmtree(dest)
        ds.save_to_disk(str(dest))
    return dest
