"""Fingerprints of decoded pixels: an exact content hash and 64-bit perceptual hashes (DCT pHash).

A fingerprint is a plain dict (it travels in the item and lands in KEY.json `details.dedup`):
  exact:       sha256 of the decoded pixels (shape included): equal only for the very same decoded content
  phash:       one 16-hex-digit pHash per keyframe (an image has one; a clip has `len(KEYFRAME_POSITIONS)`)
  informative: False for near-flat pictures, whose pHash is noise: they take part in exact matching only
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np

from vidrd_data.curation.hash_bits import KEYFRAME_POSITIONS, hamming, keyframe_indices  # noqa: F401 - re-exported

MIN_INFORMATIVE_STD = 2.0  # grey-level std (0..255) of the 32x32 thumbnail below which a picture is "flat"


def content_hash(pixels: np.ndarray) -> str:
    """sha256 of uint8 pixels and their shape: the decoded content, independent of container or file name."""
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    h = hashlib.sha256(repr(arr.shape).encode())
    h.update(arr.data)
    return h.hexdigest()


def _thumb(image: np.ndarray) -> np.ndarray:
    """Grey 32x32 float thumbnail (area filter: resizing and re-encoding change it little)."""
    img = np.asarray(image)
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(img.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)


def phash(image: np.ndarray) -> int:
    """64-bit perceptual hash: the signs of the 8x8 lowest DCT frequencies of a 32x32 grey thumbnail
    against their median (the DC term excluded from the median: it only carries brightness)."""
    return _phash_of(_thumb(image))


def _phash_of(thumb: np.ndarray) -> int:
    low = cv2.dct(thumb)[:8, :8].flatten()
    bits = low > np.median(low[1:])
    return int(np.packbits(bits).view(">u8")[0])


def informative(image: np.ndarray) -> bool:
    return float(_thumb(image).std()) >= MIN_INFORMATIVE_STD


def fingerprint(pixels: np.ndarray) -> dict:
    """An image (H, W, 3) or a clip (T, H, W, 3) -> {exact, phash: [hex...], informative}."""
    arr = np.asarray(pixels)
    if arr.ndim == 3:
        frames = [arr]
    elif arr.ndim == 4 and len(arr):
        frames = [arr[i] for i in keyframe_indices(len(arr))]
    else:
        raise ValueError(f"fingerprint needs an image (H, W, 3) or frames (T, H, W, 3), got shape {arr.shape}")
    thumbs = [_thumb(f) for f in frames]  # one thumbnail per keyframe serves both the hash and the flatness test
    return {"exact": content_hash(arr), "phash": [f"{_phash_of(t):016x}" for t in thumbs],
            "informative": all(float(t.std()) >= MIN_INFORMATIVE_STD for t in thumbs)}
