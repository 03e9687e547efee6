"""Seeded synthetic camera motion: an image becomes an N-frame pseudo-video (the paper's image–text strategy).

Pure functions, no I/O. A motion is a path of crop windows over the image, all of the target aspect ratio;
each frame is its window resampled to the target size. Kinds: zoom in, zoom out, pan left/right/up/down and
zoom+pan combinations. Amounts are drawn from a generator seeded by (build seed, sample key), so the same
input and seed always give the same clip; everything drawn is returned for the sample's json.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

PANS = {"pan_left": (-1, 0), "pan_right": (1, 0), "pan_up": (0, -1), "pan_down": (0, 1)}
RENDER_MAX_SHRUNK_SCALE = 1.25  # render() first shrinks the picture until its widest window is at most this x the clip
KINDS = ("zoom_in", "zoom_out", *PANS, *(f"{z}+{p}" for z in ("zoom_in", "zoom_out") for p in PANS))


@dataclass(frozen=True)
class MotionParams:
    kind: str
    zoom_start: float  # window scale relative to the largest target-aspect window (1 = widest view)
    zoom_end: float
    pan: tuple[float, float]  # direction of travel of the view, unit steps in x, y
    pan_fraction: float  # how much of the free margin the pan crosses (0..1)
    easing: str
    seed: int

    def as_meta(self) -> dict:
        return asdict(self)


class ImageTooSmall(ValueError):
    """The motion would upscale the image beyond the configured limit."""


def item_seed(global_seed: int, key: str) -> int:
    digest = hashlib.sha256(f"{global_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def draw_motion(seed: int, kinds: tuple[str, ...] = KINDS, zoom_range: tuple[float, float] = (1.15, 1.5),
                pan_range: tuple[float, float] = (0.5, 1.0), easing: str = "ease_in_out") -> MotionParams:
    rng = np.random.default_rng(seed)
    kind = kinds[int(rng.integers(len(kinds)))]
    zoom = float(rng.uniform(*zoom_range))
    pan_frac = float(rng.uniform(*pan_range))
    zoom_part, _, pan_part = kind.partition("+") if "+" in kind else (kind if kind.startswith("zoom") else "", "", kind if kind.startswith("pan") else "")
    if zoom_part == "zoom_in":
        z0, z1 = 1.0, zoom
    elif zoom_part == "zoom_out":
        z0, z1 = zoom, 1.0
    else:  # a pure pan needs room to move: view the image at a fixed zoom
        z0 = z1 = zoom
    pan = PANS.get(pan_part, (0, 0))
    return MotionParams(kind=kind, zoom_start=round(z0, 6), zoom_end=round(z1, 6), pan=(float(pan[0]), float(pan[1])),
                        pan_fraction=round(pan_frac if pan_part else 0.0, 6), easing=easing, seed=seed)


def _ease(t: np.ndarray, easing: str) -> np.ndarray:
    if easing == "linear":
        return t
    if easing == "ease_in_out":
        return 0.5 - 0.5 * np.cos(np.pi * t)
    raise ValueError(f"unknown easing {easing!r} (linear, ease_in_out)")


def crop_windows(image_size: tuple[int, int], target_size: tuple[int, int], motion: MotionParams,
                 num_frames: int) -> np.ndarray:
    """(num_frames, 4) float windows x0, y0, x1, y1 in image pixels, every one of the target aspect."""
    iw, ih = image_size
    tw, th = target_size
    aspect = tw / th
    base_w, base_h = (iw, iw / aspect) if iw / ih <= aspect else (ih * aspect, ih)  # largest fitting window
    t = _ease(np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1), motion.easing)
    # Interpolate zoom geometrically so that perceived speed is constant.
    zoom = np.exp(np.log(motion.zoom_start) + (np.log(motion.zoom_end) - np.log(motion.zoom_start)) * t)
    w, h = base_w / zoom, base_h / zoom
    free_x, free_y = iw - w, ih - h  # room left for the window to move, per frame
    px, py = motion.pan
    f = motion.pan_fraction
    # Centre position moves from -f/2 to +f/2 of the free margin along the pan direction.
    cx = iw / 2 + px * (t - 0.5) * f * free_x
    cy = ih / 2 + py * (t - 0.5) * f * free_y
    x0 = np.clip(cx - w / 2, 0, iw - w)
    y0 = np.clip(cy - h / 2, 0, ih - h)
    return np.stack([x0, y0, x0 + w, y0 + h], axis=1)


def path_motion(windows: np.ndarray, target_size: tuple[int, int], fps: float, grid: int = 16) -> dict[str, float]:
    """The rendered clip's true motion from its crop windows, in the units of `curation.motion.flow_motion`
    (frame widths per second; per frame pair the mean displacement, then mean and max over pairs): a grid of
    output pixels is mapped to the image through frame k's window and back through frame k+1's."""
    if len(windows) < 2 or fps <= 0:
        raise ValueError(f"path_motion needs >= 2 windows and fps > 0, got {len(windows)} and {fps}")
    tw, th = target_size
    u, v = np.meshgrid((np.arange(grid) + 0.5) / grid * tw, (np.arange(grid) + 0.5) / grid * th)
    x0, y0, x1, y1 = (np.asarray(windows, dtype=np.float64)[:, i, None, None] for i in range(4))
    sx, sy = (x1 - x0) / tw, (y1 - y0) / th  # image pixels per output pixel, per frame
    x, y = x0[:-1] + u * sx[:-1], y0[:-1] + v * sy[:-1]  # what frame k shows at each grid point...
    du, dv = (x - x0[1:]) / sx[1:] - u, (y - y0[1:]) / sy[1:] - v  # ...is there in frame k+1
    per_pair = np.hypot(du, dv).mean(axis=(1, 2)) / tw * fps
    return {"motion_mean": float(per_pair.mean()), "motion_max": float(per_pair.max())}


def max_upscale(windows: np.ndarray, target_size: tuple[int, int]) -> float:
    """The largest target/source pixel ratio over all frames (> 1 means upscaling)."""
    widths = windows[:, 2] - windows[:, 0]
    return float(target_size[0] / widths.min())


def fit_motion(image_size: tuple[int, int], target_size: tuple[int, int], motion: MotionParams, num_frames: int,
               upscale_limit: float) -> tuple[MotionParams, np.ndarray]:
    """Shrink the motion's zoom until its tightest window respects `upscale_limit`; raise if even none does."""
    windows = crop_windows(image_size, target_size, motion, num_frames)
    up = max_upscale(windows, target_size)
    if up <= upscale_limit:
        return motion, windows
    zmax = max(motion.zoom_start, motion.zoom_end)
    allowed = zmax * upscale_limit / up  # zoom at which the tightest window hits the limit exactly
    if allowed < 1.0 + 1e-6:
        iw, ih = image_size
        raise ImageTooSmall(f"image {iw}x{ih} needs {up / zmax:.2f}x upscaling to fill {target_size[0]}x{target_size[1]}"
                            f" (limit {upscale_limit})")
    scale = math.log(allowed) / math.log(zmax)
    motion = MotionParams(**{**motion.as_meta(), "zoom_start": round(motion.zoom_start ** scale, 6),
                             "zoom_end": round(motion.zoom_end ** scale, 6)})
    return motion, crop_windows(image_size, target_size, motion, num_frames)


def render(image: Image.Image, windows: np.ndarray, target_size: tuple[int, int]) -> np.ndarray:
    """Resample each window to the target size: uint8 (T, H, W, 3). Sub-pixel windows keep motion smooth.

    The image is first shrunk once (area filter) so that the widest window is at most 1.25x the target;
    each frame is then one affine warp (bilinear) of that copy: per-frame work stays ~ the output size,
    whatever the input resolution, and bilinear never has to reduce by more than 1.25x (no aliasing).
    """
    import cv2

    cv2.setNumThreads(1)  # one worker per core already
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    widest = float((windows[:, 2] - windows[:, 0]).max())
    factor = widest / target_size[0]
    if factor > RENDER_MAX_SHRUNK_SCALE:
        shrink = factor / RENDER_MAX_SHRUNK_SCALE
        h, w = rgb.shape[:2]
        new = (max(1, round(w / shrink)), max(1, round(h / shrink)))
        sx, sy = new[0] / w, new[1] / h
        # Area filter: every source pixel weighs in (no aliasing); 1.4x cheaper than PIL's bilinear here.
        rgb = cv2.resize(rgb, new, interpolation=cv2.INTER_AREA)
        windows = windows * np.array([sx, sy, sx, sy])
    # OpenCV's bilinear warp is vectorised for 4 channels, not 3: warping RGBA and dropping alpha gives the
    # same pixels 2.2x faster (0.44 -> 0.20 ms CPU per 256x256 frame, measured; identical output).
    src = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    tw, th = target_size
    frames = np.empty((len(windows), th, tw, 3), dtype=np.uint8)
    warped = np.empty((th, tw, 4), dtype=np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(windows):
        ax, ay = tw / (x1 - x0), th / (y1 - y0)
        # Pixel centres: output pixel (u + .5) maps to source x0 + (u + .5) / ax, minus .5 for the source centre.
        m = np.array([[ax, 0.0, ax * (0.5 - x0) - 0.5], [0.0, ay, ay * (0.5 - y0) - 0.5]])
        cv2.warpAffine(src, m, (tw, th), dst=warped, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB, dst=frames[i])
    return frames
