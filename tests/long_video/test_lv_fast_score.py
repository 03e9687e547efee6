"""Shot detection's frame score through OpenCV's L1 norm: the same floats, so the same cuts, as PySceneDetect's own
numpy code (issue 17: ~15 % less CPU per scanned frame). Checked on real clips, on generated scenes with known cuts,
for both detectors, and at the sums' extremes; a library whose score differs keeps its own function."""

from __future__ import annotations

import numpy as np
import pytest
from scenedetect.detectors import content_detector as cd

from tests.scene_videos import MIXED_TIMELINE, write_scene_video
from tests.short_video.sv_helpers import real_clip
from vidrd_data.media.decode import VideoReader
from vidrd_data.media.shots import DetectConfig, ShotFinder, use_exact_fast_pixel_distance


def _library_function():
    f = cd._mean_pixel_distance
    return getattr(f, "_vidrd_original", f)


@pytest.fixture
def library(monkeypatch):
    """PySceneDetect's own function installed (whatever an earlier test or stage installed), restored after."""
    original = _library_function()
    monkeypatch.setattr(cd, "_mean_pixel_distance", original)
    return original


def _scan(path, cfg: DetectConfig, fast: bool, monkeypatch, library):
    """Cuts, transitions and every distance the detector computed, with the library's function or ours."""
    monkeypatch.setattr(cd, "_mean_pixel_distance", library)
    reader = VideoReader(path)
    finder = ShotFinder(cfg, 1 / reader.frame_step)  # its make_detector installs the fast path
    if not fast:
        monkeypatch.setattr(cd, "_mean_pixel_distance", library)
    inner = cd._mean_pixel_distance
    assert getattr(inner, "_vidrd_fast", False) is fast
    seen: list[float] = []

    def recording(a, b):
        seen.append(inner(a, b))
        return seen[-1]

    monkeypatch.setattr(cd, "_mean_pixel_distance", recording)
    last = 0.0
    try:
        for n, (t, frame) in enumerate(reader.frames()):
            if n == 300:  # enough frames to compare; keeps the suite short
                break
            finder.push(t, frame)
            last = t
    finally:
        reader.close()
    cuts, transitions = finder.finish(last + reader.frame_step)
    return cuts, transitions, seen


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fast_score") / "scenes.mp4"
    return path, write_scene_video(path, MIXED_TIMELINE)


@pytest.mark.parametrize("detector", ["content", "adaptive"])
@pytest.mark.parametrize("source", ["scenes", "bikes.mp4", "vtest.avi"])
def test_scores_and_cuts_are_the_librarys_own(source, detector, scenes, monkeypatch, library):
    path = scenes[0] if source == "scenes" else real_clip(source)
    cfg = DetectConfig(detector=detector)
    slow = _scan(path, cfg, False, monkeypatch, library)
    fast = _scan(path, cfg, True, monkeypatch, library)
    assert len(slow[2]) > 100  # three planes per frame were compared
    assert fast[2] == slow[2]  # every distance bit for bit
    assert fast[:2] == slow[:2]
    if source == "scenes":
        assert slow[0]  # a hard cut of the generated timeline was found (the comparison means something)


def test_exact_at_the_extremes(library):
    assert use_exact_fast_pixel_distance()
    fast = cd._mean_pixel_distance
    rng = np.random.default_rng(7)
    cases = [(np.zeros((2160, 3840), np.uint8), np.full((2160, 3840), 255, np.uint8)),  # the largest sum a 4K plane has
             (np.full((1, 1), 3, np.uint8), np.full((1, 1), 250, np.uint8)),
             (rng.integers(0, 256, (1080, 1920), np.uint8), rng.integers(0, 256, (1080, 1920), np.uint8)),
             (rng.integers(0, 256, (37, 51), np.uint8), rng.integers(0, 256, (37, 51), np.uint8))]
    view = rng.integers(0, 256, (90, 160, 3), np.uint8)
    cases.append((view[..., 0], view[..., 2]))  # strided (non-contiguous) planes
    for a, b in cases:
        assert fast(a, b) == float(library(a, b))
    # not two equal 2-D uint8 planes: the library's own code answers (or raises) as it would
    a16, b16 = np.full((4, 4), 300, np.int16), np.zeros((4, 4), np.int16)
    assert fast(a16, b16) == library(a16, b16) == 300.0
    with pytest.raises(AssertionError):
        fast(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


def test_a_library_whose_score_differs_keeps_its_own(monkeypatch, library):
    def other_score(left, right):  # e.g. a later PySceneDetect normalising differently
        return 2 * float(library(left, right))

    monkeypatch.setattr(cd, "_mean_pixel_distance", other_score)
    assert use_exact_fast_pixel_distance() is False
    assert cd._mean_pixel_distance is other_score
    monkeypatch.delattr(cd, "_mean_pixel_distance")
    assert use_exact_fast_pixel_distance() is False
