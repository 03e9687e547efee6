"""Inputs the curation tests make: varied synthetic scenes, their transformed copies, small real videos."""

from __future__ import annotations

import io
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter


def scene(seed: int, size=(192, 144)) -> Image.Image:
    """A varied picture: an oriented two-colour gradient, random ellipses/rectangles and smooth texture."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = ((x / w - 0.5) * np.cos(angle) + (y / h - 0.5) * np.sin(angle)) + 0.5
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = (c0 * (1 - t[..., None]) + c1 * t[..., None])
    small = rng.uniform(-60, 60, (6, 8, 3)).astype(np.float32)  # low-frequency texture
    img += np.asarray(Image.fromarray(small[..., 0]).resize((w, h), Image.BICUBIC))[..., None]
    for _ in range(rng.integers(3, 8)):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(6, w / 3), rng.uniform(6, h / 3)
        col = rng.uniform(0, 255, 3)
        if rng.random() < 0.5:
            mask = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1
        else:
            mask = (abs(x - cx) < rx) & (abs(y - cy) < ry)
        img[mask] = col
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def transformed(img: Image.Image, seed: int) -> Image.Image:
    """A copy as the web makes them: resized (35-90 %), JPEG re-encoded at low quality (15-60), and
    sometimes a brightness / contrast tweak, a slight blur or a border crop (<= 2 % a side)."""
    rng = np.random.default_rng(10_000 + seed)
    f = rng.uniform(0.35, 0.9)
    out = img.resize((max(16, int(img.width * f)), max(16, int(img.height * f))), Image.BILINEAR)
    if rng.random() < 0.3:
        out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.9, 1.1))
    if rng.random() < 0.3:
        out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.9, 1.1))
    if rng.random() < 0.2:
        out = out.filter(ImageFilter.GaussianBlur(0.8))
    if rng.random() < 0.3:  # a slight border crop (up to 2 % a side)
        dx, dy = (rng.uniform(0, 0.02, 2) * out.size).astype(int)
        out = out.crop((dx, dy, out.width - dx, out.height - dy))
    return jpeg(out, int(rng.integers(15, 61)))


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def moving_frames(seed: int, n: int = 48, size=(160, 120), speed: float = 2.0) -> np.ndarray:
    """A scene panned by `speed` pixels per frame (a real, measurable motion)."""
    big = np.asarray(scene(seed, (size[0] + int(speed * n) + 8, size[1])))
    return np.stack([big[:, int(round(i * speed)):int(round(i * speed)) + size[0]] for i in range(n)])


def write_mp4(path: Path, frames: np.ndarray, fps: int = 24, crf: int = 18, bitrate: str | None = None) -> Path:
    """H.264 through PyAV: a constant-quality encode (crf) or a constant-bitrate one (bitrate)."""
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = {"b": bitrate} if bitrate else {"crf": str(crf)}
        if bitrate:
            s.bit_rate = int(bitrate.rstrip("k")) * 1000
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def reencode(src: Path, dest: Path, bitrate: str) -> Path:
    """The same video re-encoded by ffmpeg at another bitrate (what a re-upload does)."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:v", "libx264", "-b:v", bitrate,
                    "-pix_fmt", "yuv420p", str(dest)], check=True)
    return dest


def sibling(img: Image.Image, seed: int) -> Image.Image:
    """A hard negative: the same picture with a large new object (about 12 % of the area): NOT a duplicate."""
    rng = np.random.default_rng(20_000 + seed)
    arr = np.asarray(img).copy()
    h, w = arr.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    cx, cy = rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h
    arr[((x - cx) / (0.22 * w)) ** 2 + ((y - cy) / (0.18 * h)) ** 2 < 1] = rng.uniform(0, 255, 3)
    return Image.fromarray(arr)
