"""The pseudo-video benchmark's inputs: distinct enough that the recipe's dedup keeps every one, or the build
would encode fewer clips than its anchor and the bench (rightly) refuses to compare."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_bench_views_are_apart_by_phash(tmp_path, demo_data):
    from bench_pseudo_video import decode_like_pipeline, make_inputs

    from vidrd_data.curation.hashes import hamming, phash

    paths = make_inputs(tmp_path, 240, "jpg")  # 15 views of each of the 16 demo photos
    assert len(paths) == 240 and len({p.name for p in paths}) == 240
    hashes = []
    for p in paths:
        hashes.append(phash(np.asarray(decode_like_pipeline(p))))  # as the recipe's load_image decodes it
        assert p.with_suffix(".txt").read_text().strip()  # its caption travels with it
    closest = min(hamming(a, b) for a, b in itertools.combinations(hashes, 2))
    assert closest > 5, f"two bench inputs within the recipe's max_distance 5: {closest} bits"


def test_machine_cpu_counts_the_work_of_child_processes_and_the_ratio_line_reports_it():
    """The benchmarks' CPU figure is the whole machine's busy time: a child process's work shows in it (other
    processes' work may add to it, never subtract: the bound is one-sided)."""
    import resource
    import subprocess
    import time

    import pytest

    from bench_common import interleave, machine_cpu, ratio_line

    if machine_cpu() == (0.0, 0.0):
        pytest.skip("no /proc/stat here")
    burn = [sys.executable, "-c", "sum(i * i for i in range(4_000_000))"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    runs = interleave({"idle": lambda: time.sleep(0.3), "child": lambda: subprocess.run(burn, check=True)},
                      2, log=lambda _: None)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert child_cpu > 0.1
    assert sum(runs["child"].cpu) >= 0.8 * child_cpu - 0.05  # /proc/stat counts in 10 ms ticks
    line = ratio_line("t", runs["child"], runs["idle"], None)
    assert "machine CPU anchor/ours" in line and "stolen" in line


def test_long_video_bench_builds_its_source_at_the_asked_size(tmp_path):
    """`bench_long_video.py --source-size`: the HD figures must come from a source of that size, and the
    argument is refused unless it names even sides (yuv420p)."""
    import subprocess

    import pytest

    from bench_long_video import duration, make_input, parse_size

    video = make_input(tmp_path, 0.05, (320, 176))
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height", "-of", "csv=p=0", str(video)], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert probe == "320,176" and "320x176" in video.name
    assert 2.5 < duration(video) < 3.5
    assert parse_size("1920x1080") == (1920, 1080) and parse_size("1280X720") == (1280, 720)
    for bad in ("1920", "1921x1080", "32x32", "axb"):
        with pytest.raises(ValueError, match="WxH"):
            parse_size(bad)
