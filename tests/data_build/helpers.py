"""Builders of small real inputs and readers of built outputs, shared by the data-side tests."""

from __future__ import annotations

import io
import json
import struct
import tarfile
import textwrap
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def photo(seed: int, size=(160, 120), mode="RGB") -> Image.Image:
    """A structured (not noise) test image: gradients + shapes, so motion is visible and codecs behave."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 / w), (y * 255 / h), np.full_like(x, rng.integers(0, 255))], -1).astype(np.uint8)
    for _ in range(4):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(8, 30)
        base[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.integers(0, 255, 3)
    img = Image.fromarray(base)
    return img if mode == "RGB" else img.convert(mode)


def write_folder_dataset(root: Path, n: int, size=(160, 120)) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        photo(i, size).save(root / f"img{i:03d}.jpg", quality=92)
        (root / f"img{i:03d}.txt").write_text(f"a colourful test pattern number {i} with round shapes\n")
        ids.append(f"img{i:03d}")
    return ids


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (the pixel data is never decoded: it must be filtered first)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def write_manifest(path: Path, output: Path, sources: list[dict], frames: int = 8, size=(64, 64), fps: float = 8,
                   max_samples: int = 4, extra: str = "") -> Path:
    import yaml

    doc = {"name": "test", "output": str(output), "clip": {"fps": fps, "size": list(size), "frames": frames},
           "shard": {"max_samples": max_samples}, "sources": sources}
    path.write_text(yaml.safe_dump(doc, sort_keys=False) + textwrap.dedent(extra))
    return path


def image_source(name: str, root: Path, **kw) -> dict:
    return {"name": name, "kind": "image_text", "recipe": str(Path(__file__).resolve().parents[2] / "pipelines/image_text.yaml"),
            "input": {"format": "folder", "root": str(root)}, **kw}


def tar_keys(output: Path) -> list[str]:
    """Every sample key in every tar (with repeats, so duplicates show), checking each sample is complete."""
    keys = []
    for tar_path in sorted((output / "shards").glob("*.tar")):
        members: dict[str, set[str]] = {}
        order = []
        with tarfile.open(tar_path) as tf:
            for m in tf:
                key, _, ext = m.name.partition(".")
                if key not in members:
                    order.append(key)
                members.setdefault(key, set()).add(ext)
                assert len(tf.extractfile(m).read()) == m.size
        for key in order:
            assert members[key] == {"mp4", "jpg", "txt", "json"}, (tar_path, key, members[key])
        keys.extend(order)
    return keys


def status_rows(output: Path):
    from vidrd_data.sink import read_status

    return read_status(str(output))


def write_img2dataset_tar(path: Path, n: int) -> None:
    with tarfile.open(path, "w") as tf:
        for i in range(n):
            key = f"{i:09d}"
            buf = io.BytesIO()
            photo(100 + i).save(buf, format="WEBP" if i % 2 else "JPEG")
            files = {f"{key}.{'webp' if i % 2 else 'jpg'}": buf.getvalue(),
                     f"{key}.txt": f"a web image number {i} with circles on a gradient".encode(),
                     f"{key}.json": json.dumps({"url": f"http://example.invalid/{i}", "key": key}).encode()}
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
