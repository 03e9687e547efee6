"""Shot detection (vidrd_data.media.shots): what the gradual-transition test costs and what it finds.

    .venv/bin/python benchmarks/bench_shot_detect.py [--repeats 3]

Inputs, all made or found offline: a generated 16.6 s scene video with hard cuts, a dissolve and a fade
(tests/scene_videos.py, truth known) and the concatenation of real sample clips used by the long-video
tests (vidrd_testing.demo_videos_long: 5 parts, hard cuts only). For each: decode + detect time per
frame with and without transitions (best of --repeats, one process, interleaved), the transitions found,
and the long-video boundary precision/recall within 0.5 s (segments from colour-histogram embeddings,
the thresholds of tests/long_video/test_lv_segmentation.py). Then the frame score's two implementations
(PySceneDetect's numpy code, the exact OpenCV L1 norm vidrd installs) interleaved: CPU per frame, same cuts?
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenedetect.detectors import content_detector as cd  # noqa: E402

from tests.long_video.lv_helpers import run_stages  # noqa: E402
from tests.long_video.test_lv_segmentation import HIST_RULES, _video_item  # noqa: E402
from tests.scene_videos import MIXED_TIMELINE, write_scene_video  # noqa: E402
from vidrd_data.media.decode import VideoReader  # noqa: E402
from vidrd_data.media.shots import (DetectConfig, ShotFinder,  # noqa: E402
                                    use_exact_fast_pixel_distance)
from vidrd_data.segmentation import match_boundaries  # noqa: E402
from vidrd_data.stages.base import StageContext  # noqa: E402
from vidrd_testing.demo_videos_long import BIKES_CUTS, MEGAMIND_CUTS, assemble, mixed_parts, offline_videos  # noqa: E402


def detect(path: Path, transitions: bool, library_score: bool = False) -> tuple[float, int, list, list]:
    """(seconds, frames, cuts, transitions) of one decode + detect pass. `library_score`: PySceneDetect's own
    numpy frame score instead of the exact OpenCV one (shots.use_exact_fast_pixel_distance)."""
    t0 = time.perf_counter()
    reader = VideoReader(path, threads=1)
    finder = ShotFinder(DetectConfig(transitions=transitions), 1.0 / reader.frame_step)
    if library_score:
        cd._mean_pixel_distance = getattr(cd._mean_pixel_distance, "_vidrd_original", cd._mean_pixel_distance)
    end, n = 0.0, 0
    try:
        for t, frame in reader.frames():
            finder.push(t, frame)
            end, n = t + reader.frame_step, n + 1
    finally:
        reader.close()
        use_exact_fast_pixel_distance()
    cuts, trans = finder.finish(end)
    return time.perf_counter() - t0, n, cuts, trans


def score_ab(name: str, path: Path, repeats: int) -> None:
    """The frame score's two implementations interleaved on one file: CPU per frame (this process) and cuts."""
    cpu: dict[bool, list[float]] = {True: [], False: []}
    found = {}
    for _ in range(repeats):
        for lib in (True, False):
            c0 = time.process_time()
            _, n, cuts, trans = detect(path, True, library_score=lib)
            cpu[lib].append(time.process_time() - c0)
            found[lib] = (cuts, trans)
    same = "identical cuts and transitions" if found[True] == found[False] else "DIFFERENT cuts or transitions"
    lib, fast = statistics.median(cpu[True]), statistics.median(cpu[False])
    print(f"{name}: decode + detect CPU {1e3 * lib / n:.2f} ms/frame with PySceneDetect's numpy score, "
          f"{1e3 * fast / n:.2f} with the OpenCV L1 score = {lib / fast:.2f}x (medians of {repeats}; {same})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_shots_"))
    scenes = tmp / "scenes.mp4"
    truth = write_scene_video(scenes, MIXED_TIMELINE)
    mix = tmp / "mix.mp4"
    parts = mixed_parts(offline_videos())
    starts = assemble(parts, mix)
    scene_cuts = [c for c in BIKES_CUTS if c < parts[0].end] + starts
    camera_cuts = [starts[1] + c for c in MEGAMIND_CUTS]
    detect(scenes, True)  # warm-up: imports, codec set-up
    for name, path in (("scenes (192x108, 25 fps)", scenes), ("mix of sample clips (320x180, 25 fps)", mix)):
        best = {True: float("inf"), False: float("inf")}
        for _ in range(args.repeats):
            for tr in (False, True):
                dt, n, cuts, trans = detect(path, tr)
                best[tr] = min(best[tr], dt)
        print(f"{name}: {n} frames; decode+detect {1e3 * best[False] / n:.2f} ms/frame cuts only, "
              f"{1e3 * best[True] / n:.2f} ms/frame with transitions")
        print(f"  cuts {cuts}\n  transitions {trans}")
    print(f"  scenes truth: cuts {truth.cuts} transitions {truth.transitions}")
    from bench_long_video import make_input

    score_ab("scene video", scenes, args.repeats)
    score_ab("long-video bench source (1 min, 640x360)", make_input(tmp, 1.0), args.repeats)
    ctx = StageContext(clip={"fps": 8, "size": [128, 128], "frames": 8})
    for detector in ("content", "adaptive"):
        segs = run_stages([_video_item(mix)], [("shot_detect", {"detector": detector}),
                                               ("embed_shots", {"model": "color_histogram"}),
                                               ("segment_shots", HIST_RULES)], ctx)
        bounds = sorted({s.meta["segmentation"]["segment"]["raw_span"][0] for s in segs} - {0.0})
        p, r = match_boundaries(bounds, scene_cuts)
        pc, rc = match_boundaries(segs[0].meta["segmentation"]["video"]["cuts"], scene_cuts + camera_cuts)
        print(f"mix, {detector}: scene boundaries P/R within 0.5 s = {p:.3f}/{r:.3f} ({len(scene_cuts)} true); "
              f"detected cuts vs all cuts P/R = {pc:.3f}/{rc:.3f}")


if __name__ == "__main__":
    main()
