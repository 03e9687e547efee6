"""A long video decoded once (clip frames kept in a scratch file) vs decoded again for its clips.

  python benchmarks/bench_proxy_file.py [--minutes 1] [--height 1080] [--rounds 4]

The long-video bench's source (`bench_long_video.make_input`, 640x360, 25 fps), scaled to `--height` (16:9)
when asked, built with the bench's manifest (whole shots at 256x256 and the source fps: the clip frames are far
over the in-memory proxy budget) alternately with `shot_detect.proxy_file_max_mb: 2048` (the file proxy, forced
on whatever the source's size: `proxy_file_min_pixel_ratio: 0`) and `0` (decode again), model pools kept loaded between builds, in one process.
Prints each build's wall time and whether its clips came from one decode (`decoded_once` in the samples).
The file proxy is taken by default only for sources of at least PROXY_FILE_MIN_PIXEL_RATIO times the clip's
pixels (media/scan.py), from what this measured. (The bench forces it with the stage's parameter: setting that
constant in the driver, as it once did, never reached Ray's workers.)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_long_video as lv  # noqa: E402
from bench_common import load_note, measured  # noqa: E402


def decoded_once(out: Path) -> bool | None:
    for tar in out.rglob("*.tar"):
        with tarfile.open(tar) as tf:
            for m in tf:
                if m.name.endswith(".json"):
                    details = json.loads(json.load(tf.extractfile(m))["details"])
                    return details["segmentation"]["video"]["decoded_once"]
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--height", type=int, default=360, help="source height (360: the bench's own; 1080: scaled up)")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    from vidrd_common.ray_session import init_ray
    from vidrd_data.build import build

    work = Path(tempfile.mkdtemp(prefix="bench_proxy_"))
    try:
        video = lv.make_input(work, args.minutes)
        if args.height != 360:
            scaled = work / f"source_{args.height}p.mp4"
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(video), "-vf", f"scale=-2:{args.height}",
                            "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", str(scaled)], check=True)
            video = scaled
        print(f"bench_proxy_file: {args.minutes:g} min at {args.height}p -> 256x256 @ 25 fps; {load_note()}")
        init_ray(None, None, 1024)
        walls: dict[str, list[float]] = {"file": [], "decode": []}
        cpus: dict[str, list[float]] = {"file": [], "decode": []}
        for r in range(args.rounds):
            for mode in (("file", "decode") if r % 2 == 0 else ("decode", "file")):
                m = lv.write_manifest(work, video, f"{mode}{r}")
                doc = yaml.safe_load(m.read_text())
                doc["sources"][0]["overrides"]["shot_detect"] = {"proxy_file_max_mb": 2048 if mode == "file" else 0,
                                                                  "proxy_file_min_pixel_ratio": 0}
                m.write_text(yaml.safe_dump(doc))
                report, wall, cpu, stolen = measured(lambda: build(m, progress=False, out=lambda s: None,
                                                                    keep_models=True))
                walls[mode].append(wall)
                cpus[mode].append(cpu)
                if report.counts.get("failed"):
                    raise SystemExit(f"failed items: {report.counts}")
                print(f"  round {r + 1} {mode:6s} {walls[mode][-1]:6.2f} s  machine cpu {cpus[mode][-1]:5.1f} s  "
                      f"stolen {stolen:4.1f} s  decoded_once="
                      f"{decoded_once(Path(m).with_suffix(''))}", flush=True)
        for what, runs in (("wall", walls), ("machine cpu", cpus)):
            later = {k: statistics.median(v[1:] or v) for k, v in runs.items()}  # round 1 warms the heaps up
            print(f"  {what} median after round 1: file {later['file']:.2f} s, decode again {later['decode']:.2f} s "
                  f"(file/decode {later['file'] / later['decode']:.2f})")
        print(f"after: {load_note()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
