"""Pseudo-motion: deterministic, of the target aspect, moves as named, respects the upscale limit."""

import numpy as np
import pytest

from vidrd_data import pseudo_motion as pm
from tests.data_build.helpers import photo


def test_same_input_and_seed_same_clip_different_seed_differs():
    img = photo(1, (400, 300))
    clips = []
    for seed in (7, 7, 8):
        motion = pm.draw_motion(pm.item_seed(seed, "photos_x"))
        motion, windows = pm.fit_motion(img.size, (64, 64), motion, 8, 2.0)
        clips.append((motion, pm.render(img, windows, (64, 64))))
    assert clips[0][0] == clips[1][0] and np.array_equal(clips[0][1], clips[1][1])
    assert clips[0][0] != clips[2][0]


@pytest.mark.parametrize("kind", pm.KINDS)
def test_windows_keep_target_aspect_and_stay_inside(kind):
    motion = pm.MotionParams(kind, 1.0 if "zoom_in" in kind else 1.4, 1.4 if "zoom_in" in kind else 1.0,
                             pm.PANS.get(kind.split("+")[-1], (0, 0)), 1.0 if "pan" in kind else 0.0, "linear", 0)
    if not kind.startswith("zoom"):
        motion = pm.MotionParams(kind, 1.3, 1.3, motion.pan, 1.0, "linear", 0)
    w = pm.crop_windows((400, 300), (96, 64), motion, 12)
    widths, heights = w[:, 2] - w[:, 0], w[:, 3] - w[:, 1]
    np.testing.assert_allclose(widths / heights, 96 / 64, rtol=1e-9)
    assert (w[:, 0] >= -1e-9).all() and (w[:, 2] <= 400 + 1e-9).all() and (w[:, 3] <= 300 + 1e-9).all()
    cx, cy = (w[:, 0] + w[:, 2]) / 2, (w[:, 1] + w[:, 3]) / 2
    if "zoom_in" in kind:
        assert widths[-1] < widths[0]
    if "zoom_out" in kind:
        assert widths[-1] > widths[0]
    dx, dy = motion.pan
    if dx:
        assert np.sign(cx[-1] - cx[0]) == dx
    if dy:
        assert np.sign(cy[-1] - cy[0]) == dy


def test_upscale_limit_shrinks_zoom_then_filters():
    motion = pm.MotionParams("zoom_in", 1.0, 1.5, (0, 0), 0.0, "linear", 0)
    fitted, windows = pm.fit_motion((120, 120), (96, 96), motion, 8, 1.0)  # 1.5x zoom would upscale 1.875x
    assert pm.max_upscale(windows, (96, 96)) <= 1.0 + 1e-9
    assert fitted.zoom_end < 1.5
    with pytest.raises(pm.ImageTooSmall, match="needs 2.00x upscaling"):
        pm.fit_motion((64, 64), (128, 128), pm.MotionParams("zoom_in", 1.0, 1.2, (0, 0), 0, "linear", 0), 8, 1.5)


def test_render_shape_and_motion_visible():
    img = photo(3, (320, 240))
    motion = pm.MotionParams("pan_right", 1.4, 1.4, (1, 0), 1.0, "linear", 0)
    frames = pm.render(img, pm.crop_windows(img.size, (64, 48), motion, 8), (64, 48))
    assert frames.shape == (8, 48, 64, 3) and frames.dtype == np.uint8
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 5


def test_render_is_exact_for_unscaled_windows():
    """Pixel-centre conventions: a window of the target's own size reproduces the crop bit for bit."""
    from PIL import Image

    img = Image.fromarray((np.indices((64, 64)).sum(0) * 2).astype(np.uint8)).convert("RGB")
    out = pm.render(img, np.array([[10.0, 20.0, 42.0, 52.0]]), (32, 32))
    np.testing.assert_array_equal(out[0], np.asarray(img)[20:52, 10:42])
