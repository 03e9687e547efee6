"""Clip motion from dense optical flow (OpenCV DIS, ultrafast preset) on small grey frames.

Units: frame widths per second, so the figure does not depend on the clip's size or frame rate:
a pan that crosses half the picture in 2 s scores 0.25. Per consecutive frame pair, the mean flow
magnitude (pixels) / analysis width * fps; `motion_mean` is their mean, `motion_max` their maximum.
"""

from __future__ import annotations

import cv2
import numpy as np

ANALYSIS_WIDTH = 128  # frames are downscaled to this width first: flow cost is per pixel


def _grey_small(frame: np.ndarray, width: int) -> np.ndarray:
    h, w = frame.shape[:2]
    size = (width, max(8, int(round(h * width / w))))
    grey = cv2.cvtColor(np.ascontiguousarray(frame[..., :3]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def flow_motion(frames: np.ndarray, fps: float, width: int = ANALYSIS_WIDTH, stride: int = 1) -> dict[str, float]:
    """frames (T, H, W, 3) uint8 at `fps` -> {motion_mean, motion_max} in frame widths per second.

    `stride` > 1 compares frames that far apart (cheaper on long clips; the rate accounts for it)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) < 2:
        raise ValueError(f"motion needs at least 2 frames (T, H, W, 3), got shape {frames.shape}")
    if fps <= 0:
        raise ValueError(f"motion needs fps > 0, got {fps}")
    width = min(int(width), frames.shape[2])
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    greys = [_grey_small(f, width) for f in frames[::stride]]
    per_pair = []
    for a, b in zip(greys, greys[1:]):
        flow = dis.calc(a, b, None)
        per_pair.append(float(np.hypot(flow[..., 0], flow[..., 1]).mean()) / width * fps / stride)
    return {"motion_mean": float(np.mean(per_pair)), "motion_max": float(np.max(per_pair))}
