"""A long video's clip frames kept in a file on the scanning node's disk, so its clips need no second decode.

The scan converts every clip-grid frame to the clip size anyway; over the in-memory budget (`proxy_max_mb`,
the frames travel with the item) they go to a raw file instead (`proxy_file_max_mb`): uint8 frames of one
shape back to back, written once in the scan, read by slice when the clips are cut (the page cache usually
still holds them). Only the handle travels between tasks. A reader on another node, or after the file is gone
(a retried task on a fresh worker), gets None and decodes the span from the video as before.
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def current_node() -> str:
    """This process's node: Ray's node id under Ray, else the host name."""
    try:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - no Ray context: a plain process
        pass
    return socket.gethostname()


@dataclass(frozen=True)
class ProxyPiece:
    """One scan range's frames: `count` frames of `shape` in `path`, on `node`."""
    path: str
    node: str
    count: int
    shape: tuple[int, int, int]


class FrameFile:
    """Append-only frames of one shape in a file, list-like for the scan's GridSampler (append, len, del tail)."""

    def __init__(self, path: Path, shape: tuple[int, int, int], node: str):
        self.path, self.shape, self.node = Path(path), tuple(int(x) for x in shape), node
        self._f = open(self.path, "wb")
        self._n = 0
        self.failed: str | None = None  # a write error (disk full): the scan goes on, the clips decode again

    def append(self, frame: np.ndarray) -> None:
        if frame.shape != self.shape or frame.dtype != np.uint8:
            raise ValueError(f"proxy frame {frame.dtype} {frame.shape}, expected uint8 {self.shape}")
        if self.failed:
            return
        try:
            self._f.write(np.ascontiguousarray(frame).data)
        except OSError as err:
            self.failed = f"{err.strerror or err}"
            return
        self._n += 1

    def __len__(self) -> int:
        return self._n

    def __delitem__(self, tail: slice) -> None:  # only `del samples[k:]`: what lies past a range's end
        if not isinstance(tail, slice) or tail.stop is not None or tail.step is not None:
            raise TypeError("FrameFile supports only deleting a tail: del f[k:]")
        self._n = min(self._n, max(0, tail.start or 0))

    def close(self) -> ProxyPiece:
        self._f.truncate(self._n * math.prod(self.shape))
        self._f.close()
        return ProxyPiece(str(self.path), self.node, self._n, self.shape)

    def discard(self) -> None:
        try:
            self._f.close()
        except OSError:  # its buffered tail could not be written either: it is being removed anyway
            pass
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class ProxyFrames:
    """A whole video's proxy: its ranges' pieces in time order; grid frame k is the k-th frame overall."""
    pieces: tuple[ProxyPiece, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return sum(p.count for p in self.pieces)

    def read(self, lo: int, hi: int) -> np.ndarray | None:
        """Frames [lo, hi) as one array, or None where this process cannot read them (another node, gone)."""
        if not self.pieces or hi <= lo:
            return None
        here = current_node()
        out, start = [], 0
        for p in self.pieces:
            a, b = max(lo, start), min(hi, start + p.count)
            if a < b:
                if p.node != here or not os.path.exists(p.path):
                    return None
                size = math.prod(p.shape)
                try:
                    chunk = np.fromfile(p.path, np.uint8, count=(b - a) * size, offset=(a - start) * size)
                except OSError:
                    return None
                if chunk.size != (b - a) * size:  # truncated behind our back
                    return None
                out.append(chunk.reshape(b - a, *p.shape))
            start += p.count
        if sum(len(x) for x in out) != hi - lo:
            return None
        return out[0] if len(out) == 1 else np.concatenate(out)
