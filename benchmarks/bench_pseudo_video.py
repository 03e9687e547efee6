"""Image-text -> pseudo-video: `vidrd-data build` against encode-only of the very frames it renders.

  python benchmarks/bench_pseudo_video.py           # quick: 96 JPEG + 96 PNG inputs, 2 rounds
  python benchmarks/bench_pseudo_video.py --full    # 384 + 384 inputs, 3 rounds, + steady state, peak RSS at 10x
  python benchmarks/bench_pseudo_video.py --inputs 192 --repeats 3 --steady   # + steady state, no 10x RSS run

Inputs: the demo photos (scikit-image), each copy a distinct view (crop, rotation, mirror: the recipe's
dedup keeps them all) scaled so the longer side is 1024 px, saved as JPEG (q92) and PNG, with its caption; output 16 frames of 256x256 at 8 fps, libx264 veryfast crf 20, 1 thread per encoder.
Per format, interleaved round by round on the same inputs:
- ours: `vidrd.build` of the image_text recipe (load -> pseudo_motion -> caption_select -> encode -> shards),
  embedded Ray on 2 CPUs, already started and warm (bench_first_shard.py times start-up);
- encode-only (the anchor, the bound): the frames our pipeline renders for each input, prepared beforehand
  in RAM-backed files, only encoded, in 2 plain processes (spawn pool, no Ray) with the pipeline's encoder;
- plain PyAV encode-only (for reference): the same frames through `VideoFrame.from_ndarray(rgb24)` ->
  libx264 as PyAV documents it (our encoder converts colour with OpenCV instead);
- stages, no Ray (the bound on ours): the recipe's CPU stages as shipped (load_image, fingerprint, pseudo_motion,
  caption_select, motion, dedup, encode) on the same inputs in the same 2 plain processes, <= 32 per call, an even
  number of calls of near-equal size: a build whose runtime (tasks, worker processes, the shared dedup index, the
  shard writer) cost nothing. Its ratio to encode-only is the most a build of this recipe can reach; what it lacks
  of 0.8 is the stages' own work.
RATIO = our clips/s / the anchor's clips/s (target >= 0.8 of encode-only), per whole build of N inputs; --full also
gives the steady state: the extra time 4x more inputs (N/2 -> 2N) take, ours and encode-only (a build's one-off
costs cancel: its dedup actor and worker processes starting, the first partition's ramp, the last one's tail).
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import REPO, Timed, load_note, measured, ratio_line  # noqa: E402

SIZE, FRAMES, FPS, LONG_SIDE = (256, 256), 16, 8, 1024
CLIP = {"fps": FPS, "size": list(SIZE), "frames": FRAMES}  # the manifest's clip spec
_SHM = "/dev/shm" if Path("/dev/shm").is_dir() else None


def make_inputs(dest: Path, n: int, ext: str = "jpg", distinct: bool = True) -> list[Path]:
    """n images (the demo photos cycled, longer side LONG_SIDE) as `ext`, each with its caption file. `distinct`:
    a view whose pHash lies within the recipe's dedup distance (plus a margin) of an earlier one is skipped for the
    photo's next view: the recipe's dedup must keep every input, or ours would encode fewer clips than the anchor."""
    from vidrd_data.curation.hashes import hamming, phash
    from vidrd_testing.demo_data import prepare_photos

    photos = REPO / "data/demo/photos"
    if not photos.is_dir():
        prepare_photos(photos)
    srcs = sorted(photos.glob("*.png"))
    dest.mkdir(parents=True, exist_ok=True)
    out, seen, views = [], [], {}
    for i in range(n):
        src = srcs[i % len(srcs)]
        img_path = dest / f"{src.stem}_{i:05d}.{ext}"
        if not img_path.exists():
            for _ in range(64):
                views[src] = views.get(src, -1) + 1
                view = distinct_view(Image.open(src).convert("RGB"), views[src])
                h = phash(np.asarray(view))
                if not distinct or all(hamming(h, o) > 8 for o in seen):
                    break
            else:
                raise RuntimeError(f"no view of {src.name} unlike the {len(seen)} before it: use fewer inputs")
            seen.append(h)
            view.save(img_path, **({"quality": 92} if ext == "jpg" else {}))
            shutil.copy(src.with_suffix(".txt"), img_path.with_suffix(".txt"))
        out.append(img_path)
    return out


def distinct_view(im: Image.Image, cycle: int) -> Image.Image:
    """The photo's `cycle`-th copy (rotation, mirror, a seeded crop shrinking every 8 cycles), longer side
    LONG_SIDE."""
    rng = np.random.default_rng(cycle)
    if cycle:
        w, h = im.size
        scale = 1.0 - 0.1 * (cycle // 8 % 7)  # 8 orientations per crop scale: same-orientation copies differ in zoom
        cw, ch = int(w * scale * rng.uniform(0.9, 1.0)), int(h * scale * rng.uniform(0.9, 1.0))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        im = im.crop((x0, y0, x0 + cw, y0 + ch)).rotate(90 * (cycle % 4), expand=True)
        if (cycle // 4) % 2:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    f = LONG_SIDE / max(im.size)
    return im.resize((round(im.width * f), round(im.height * f)), Image.Resampling.LANCZOS)


_STAGES: list = []
STAGES = "stages, no Ray"  # the recipe's CPU stages in 2 plain processes: a build with its runtime free
STAGE_CHUNK = 32  # inputs per call, as the recipe's items_per_task


def even_chunks(paths: list[str], most: int, workers: int) -> list[list[str]]:
    """At most `most` per chunk, in a multiple of `workers` chunks of near-equal size: a bound must not lose time
    to its own last chunk running alone (96 inputs in 32s: 3 chunks on 2 processes; here 4 of 24)."""
    k = workers * max(1, math.ceil(len(paths) / (most * workers)))
    return [c for c in (paths[i * len(paths) // k:(i + 1) * len(paths) // k] for i in range(k)) if c]


def _all_clips(counts: list[int], n: int) -> int:
    if sum(counts) != n:
        raise RuntimeError(f"the stages made {sum(counts)} clips of {n} inputs: not like for like")
    return n


def _pipeline_stages() -> list:
    """The image_text recipe's load_image and pseudo_motion, with the params a build resolves (its defaults and
    what they derive from each other)."""
    from bench_common import make_stages
    from profile_pipelines import recipe_cpu_stages

    if not _STAGES:
        specs = dict(recipe_cpu_stages("image_text.yaml", {}, CLIP)[0])
        _STAGES.extend(make_stages([(n, specs[n]) for n in ("load_image", "pseudo_motion")], CLIP))
    return _STAGES


def _through(stages: list, path: Path, key: str):
    from bench_common import apply_stages

    from vidrd_data.items import Item

    [item] = apply_stages(stages, [Item(key=key, source="bench", input_id=path.name,
                                        data={"path": str(path), "caption": "-"})])
    return item


def decode_like_pipeline(path: Path) -> Image.Image:
    """The picture as the recipe's load_image decodes it (reduced to what the pseudo-video needs)."""
    return _through(_pipeline_stages()[:1], path, "decode").data["image"]


def render_like_pipeline(path: Path, key: str) -> np.ndarray:
    """The frames the image_text recipe renders for this input (its per-key seed)."""
    return _through(_pipeline_stages(), path, key).data["frames"]


def _encode_ours(npy: str) -> int:
    from vidrd_data.media.encode import encode_mp4

    return len(encode_mp4(np.load(npy), FPS))


def _stages_chunk(paths: list[str]) -> int:
    """The recipe's CPU stages as shipped (load_image through encode; no model stages configured here) on these
    inputs in this process, no Ray: what a build of them would cost with its runtime (tasks, workers, the shared
    dedup index, the writer) free. Fresh stages per chunk: a dedup index kept from an earlier round would filter
    every input as a duplicate of itself and skip its encode. Returns the clips made."""
    from bench_common import apply_stages, make_stages
    from profile_pipelines import recipe_cpu_stages

    from vidrd_data.items import Item, make_key

    stages = make_stages(recipe_cpu_stages("image_text.yaml", {}, CLIP)[0], CLIP)
    items = [Item(key=make_key("bench", Path(p).stem), source="bench", input_id=Path(p).name,  # the build's keys
                  data={"path": p, "caption_path": str(Path(p).with_suffix(".txt"))},
                  meta={"source": {"kind": "image"}}) for p in paths]
    return sum(1 for it in apply_stages(stages, items) if it.alive and it.data.get("mp4"))


def _encode_plain(npy: str) -> int:
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=Fraction(FPS))
        s.width, s.height, s.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        s.options = {"preset": "veryfast", "crf": "20"}
        s.codec_context.thread_count = 1
        for f in np.load(npy):
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return buf.tell()


def write_manifest(images: Path, out: Path) -> Path:
    import yaml

    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "bench", "output": str(out), "clip": dict(CLIP),
        "shard": {"max_samples": 100}, "ray": {"num_cpus": 2, "object_store_mb": 512},
        "sources": [{"name": "bench", "kind": "image_text", "recipe": str(REPO / "pipelines/image_text.yaml"),
                     "input": {"format": "folder", "root": str(images)}}]}))
    return path


def run_ours(manifest: Path, n: int, every: bool = True) -> int:
    from vidrd_data.build import build

    shutil.rmtree(manifest.with_suffix(""), ignore_errors=True)
    report = build(manifest, progress=False, out=lambda s: None)
    if every and report.counts.get("success") != n:  # e.g. dedup found two inputs alike: the anchor would encode more
        raise RuntimeError(f"the build did not turn every input into a clip (ratio would not be like for like): "
                           f"{report.counts}")
    return n


class PeakRss:
    """Peak RSS summed over this process and its descendants (embedded Ray: gcs, raylet, workers), 20 Hz."""

    def __init__(self):
        import psutil

        self.peak, self._me, self._stop = 0, psutil.Process(), threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            total = 0
            for p in [self._me, *self._me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except Exception:  # noqa: BLE001 - a worker that exited between listing and reading
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def bench_format(ext: str, n: int, repeats: int, work: Path, pool) -> dict[str, Timed]:
    from vidrd_data.items import make_key

    images = make_inputs(work / ext, n, ext)
    frames_dir = Path(tempfile.mkdtemp(prefix="bench_pv_frames_", dir=_SHM))
    npys = []
    for p in images:  # the folder source's key for this file (its stem): the same seed, the same motion
        npy = frames_dir / f"{p.stem}.npy"
        np.save(npy, render_like_pipeline(p, make_key("bench", p.stem)))
        npys.append(str(npy))
    pool.map(_encode_ours, npys[:4], chunksize=1)  # both processes have imported and encoded once
    pool.map(_encode_plain, npys[:4], chunksize=1)
    chunks = even_chunks([str(p) for p in images], STAGE_CHUNK, 2)
    pool.map(_stages_chunk, [[str(images[0])], [str(images[1])]], chunksize=1)
    manifest = write_manifest(work / ext, work / f"out_{ext}")
    timed = {k: Timed(k) for k in ("ours", "encode-only", "plain PyAV encode-only", STAGES)}
    jobs = {"ours": lambda: run_ours(manifest, n),
            "encode-only": lambda: pool.map(_encode_ours, npys, chunksize=1),
            "plain PyAV encode-only": lambda: pool.map(_encode_plain, npys, chunksize=1),
            STAGES: lambda: _all_clips(pool.map(_stages_chunk, chunks, chunksize=1), n)}
    try:
        for r in range(repeats):
            for name, fn in jobs.items():
                _, wall, cpu, steal = measured(fn)
                timed[name].walls.append(wall)
                timed[name].cpu.append(cpu)
                timed[name].steal.append(steal)
            print(f"  {ext} round {r + 1}/{repeats}: " + ", ".join(
                f"{k} {n / v.walls[-1]:.1f} clips/s" for k, v in timed.items()))
    finally:
        shutil.rmtree(frames_dir, ignore_errors=True)
    return timed


def bench_steady(work: Path, pool, small: int, big: int, repeats: int) -> tuple[Timed, Timed]:
    """Steady state (JPEG): the extra wall time `big - small` more inputs take, ours and encode-only, interleaved.
    What a build pays once (its dedup index actor, worker processes started, the first partition's ramp, the last
    one's tail) cancels out; what remains is the rate a long build runs at."""
    from vidrd_data.items import make_key

    images = make_inputs(work / "steady", big, "jpg")
    frames_dir = Path(tempfile.mkdtemp(prefix="bench_pv_frames_", dir=_SHM))
    try:
        npys = []
        for p in images:
            npys.append(str(frames_dir / f"{p.stem}.npy"))
            np.save(npys[-1], render_like_pipeline(p, make_key("bench", p.stem)))
        manifests = {}
        for n in (small, big):  # hard links: the same files (and keys) in a folder per size, inside its root
            folder = work / f"steady_{n}"
            folder.mkdir()
            for p in images[:n]:
                for f in (p, p.with_suffix(".txt")):
                    os.link(f, folder / f.name)
            manifests[n] = write_manifest(folder, work / f"out_steady_{n}")
        walls: dict[tuple[str, int], list[float]] = {}
        cpus: dict[tuple[str, int], list[float]] = {}
        steals: dict[tuple[str, int], list[float]] = {}
        for r in range(repeats):
            for n in (small, big):
                for name, fn in (("ours", lambda: run_ours(manifests[n], n)),
                                 ("encode-only", lambda: pool.map(_encode_ours, npys[:n], chunksize=1))):
                    _, wall, cpu, steal = measured(fn)
                    for d, v in ((walls, wall), (cpus, cpu), (steals, steal)):
                        d.setdefault((name, n), []).append(v)
            print(f"  steady round {r + 1}/{repeats}: " + ", ".join(
                f"{name} {big - small} more clips in {walls[name, big][-1] - walls[name, small][-1]:.2f} s"
                for name in ("ours", "encode-only")))
    finally:
        shutil.rmtree(frames_dir, ignore_errors=True)
    def extra(d: dict, name: str) -> list[float]:  # what the big build took beyond the small one, per round
        return [b - a for a, b in zip(d[name, small], d[name, big])]

    return tuple(Timed(name, extra(walls, name), cpu=extra(cpus, name), steal=extra(steals, name))
                 for name in ("ours", "encode-only"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="384 inputs per format, 3 rounds, peak RSS at 10x")
    ap.add_argument("--inputs", type=int, help="inputs per format (default 96, --full 384)")
    ap.add_argument("--repeats", type=int, help="rounds (default 2, --full 3)")
    ap.add_argument("--steady", action="store_true", help="also the steady state (N/2 -> 2N inputs), as --full does")
    args = ap.parse_args()
    n = args.inputs or (384 if args.full else 96)
    repeats = args.repeats or (3 if args.full else 2)
    from vidrd_data.runtime import init_ray

    work = Path(tempfile.mkdtemp(prefix="bench_pv_"))
    try:
        t0 = time.perf_counter()
        init_ray(None, num_cpus=2, object_store_mb=512)
        print(f"ray start-up {time.perf_counter() - t0:.1f} s (not timed below); {n} inputs per format, "
              f"{repeats} rounds; {load_note()}")
        warm = make_inputs(work / "warm", 8, "jpg")
        run_ours(write_manifest(work / "warm", work / "out_warm"), len(warm))  # worker pool, imports
        with mp.get_context("spawn").Pool(2) as pool:  # spawn: never fork a process holding Ray's threads
            results = {ext: bench_format(ext, n, repeats, work, pool) for ext in ("jpg", "png")}
        for ext, res in results.items():
            for name, t in res.items():
                print(f"  {ext} {name:<24} median {n / t.median:6.1f} clips/s")
            print(ratio_line(f"pseudo-video {ext.upper()}, ours vs encode-only (2 processes)", res["ours"],
                             res["encode-only"], 0.8, higher_is="of encode-only speed"))
            print(ratio_line(f"pseudo-video {ext.upper()}, ours vs plain PyAV encode-only", res["ours"],
                             res["plain PyAV encode-only"], None, higher_is="of its speed"))
            print(ratio_line(f"pseudo-video {ext.upper()}, BOUND: the recipe's CPU stages without Ray (2 processes) vs "
                             "encode-only, what a build with a free runtime would reach", res[STAGES],
                             res["encode-only"], None, higher_is="of encode-only speed"))
        if args.full or args.steady:
            with mp.get_context("spawn").Pool(2) as pool:
                pool.map(_encode_ours, [], chunksize=1)
                ours, enc = bench_steady(work, pool, n // 2, n * 2, repeats)
            print(f"  steady state: ours {1.5 * n / ours.median:.1f} clips/s, encode-only {1.5 * n / enc.median:.1f}"
                  f" clips/s ({n // 2} -> {n * 2} inputs)")
            print(ratio_line("pseudo-video JPEG steady state (extra inputs), ours vs encode-only", ours, enc, 0.8,
                             higher_is="of encode-only speed"))
        if args.full:
            with PeakRss() as small:
                run_ours(write_manifest(work / "jpg", work / "out_mem1"), n)
            make_inputs(work / "big", n * 10, "jpg", distinct=False)
            with PeakRss() as big:  # near-copies among 10x the inputs: dedup filters some (memory is the point)
                run_ours(write_manifest(work / "big", work / "out_mem10"), n * 10, every=False)
            print(f"peak RSS (driver + Ray): {n} inputs {small.peak / 2**20:.0f} MiB, {n * 10} inputs "
                  f"{big.peak / 2**20:.0f} MiB = {big.peak / small.peak:.2f}x")
        print(f"after: {load_note()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
