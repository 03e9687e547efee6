"""Per-item guards around every stage call: input file checks, caps, and a wall-clock limit.

The runtime calls `guard_stage_call(stage, items)` instead of `stage.process_batch(items)`. It
- fails an item whose local input (`data["path"]`, `["caption_path"]`, `["tar"]`) is not a regular file
  (`not_a_regular_file: ...`: a FIFO, device or directory is never opened, so it cannot block), and filters one
  over the stage's `max_file_bytes` (`too_large: ...`, checked by `stat` before any byte is read);
- turns a `LimitExceeded` raised by the stage ("rule: details") into a filtered row with that rule;
- limits the call to `item_timeout_s` per item (stage parameter; default DEFAULT_ITEM_TIMEOUT_S). Past it a
  `SIGALRM` raises ItemTimeout in the stage (Python code, sleeping or blocked system calls) and the item fails
  with `timeout: ...`. If the stage is stuck in C code that ignores signals, after a grace period the keys of
  the call are written to a node-local record and the worker process is killed; Ray retries its task and the
  retried call fails those items with `timeout` at once (a batch is first split into single items).
A multi-item call that raises is re-raised: the runtime retries its items one by one to find the culprit.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("vidrd_data")

DEFAULT_ITEM_TIMEOUT_S = float(os.environ.get("VIDRD_ITEM_TIMEOUT_S", "900"))
DEFAULT_MAX_VIDEO_FILE_BYTES = 32 * 2**30  # reading stages' `max_file_bytes` defaults (a 2 h 1080p film: ~4-8 GB)
DEFAULT_MAX_IMAGE_FILE_BYTES = 256 * 2**20
MIN_GRACE_S, MAX_GRACE_S = 2.0, 30.0  # stuck in C: wait this much past the limit before killing the worker
_KIND_NAMES = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
               stat.S_IFDIR: "a directory", stat.S_IFSOCK: "a socket"}


class LimitExceeded(Exception):
    """A per-item cap was hit; the message is the filter rule: "rule: details" (too_large, too_long, ...)."""


class NotRegularFile(OSError):
    """An input path names a FIFO, device, directory or socket: never opened (a FIFO would block the reader)."""


class ItemTimeout(BaseException):
    """The stage call ran past its wall-clock limit (a BaseException: a stage's `except Exception` cannot eat it)."""


# ------------------------------------------------------------------------------------------------ input files

def check_input_file(path: str | os.PathLike, max_bytes: int | None = None) -> int:
    """The file's size; raises NotRegularFile (not a regular file), LimitExceeded (over max_bytes) or OSError."""
    st = os.stat(path)  # follows symlinks: what a reader would open
    if not stat.S_ISREG(st.st_mode):
        what = _KIND_NAMES.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise NotRegularFile(f"not_a_regular_file: {Path(path).name} is {what}; only regular files are read")
    if max_bytes is not None and st.st_size > max_bytes:
        raise LimitExceeded(f"too_large: file {Path(path).name} is {st.st_size} bytes > max_file_bytes {max_bytes}")
    return st.st_size


def open_regular(path: str | os.PathLike, max_bytes: int | None = None):
    """Open a local file for binary reading, refusing anything but a regular file without blocking on it
    (opened non-blocking, then checked with fstat: no window for a swap between check and open)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = _KIND_NAMES.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise NotRegularFile(f"not_a_regular_file: {Path(path).name} is {what}; only regular files are read")
        if max_bytes is not None and st.st_size > max_bytes:
            raise LimitExceeded(f"too_large: file {Path(path).name} is {st.st_size} bytes > max_file_bytes {max_bytes}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_input_bytes(path: str | os.PathLike, max_bytes: int | None = None) -> bytes:
    with open_regular(path, max_bytes) as f:
        return f.read()


_INPUT_KEYS = {"path": True, "caption_path": True, "tar": False}  # item.data key -> max_file_bytes applies


def _local_inputs(item) -> list[tuple[str, bool]]:
    return [(p, sized) for key, sized in _INPUT_KEYS.items()
            if isinstance(p := item.data.get(key), (str, os.PathLike)) and "://" not in str(p)]


# ---------------------------------------------------------------------------------------------- the guard

def guard_stage_call(stage, items: list) -> list:
    """`stage.process_batch(items)` with the per-item guards (module docstring). Returns the items out."""
    limit_per_item = float(stage.params.get("item_timeout_s") or DEFAULT_ITEM_TIMEOUT_S)
    max_bytes = stage.params.get("max_file_bytes")
    records = _Records(stage.name)
    ready, out = [], []
    for item in items:
        mark = records.get(item.key)
        if mark == "stuck":
            out.append(item.fail(stage.name, f"timeout: stage {stage.name} was still running after "
                                             f"{limit_per_item:g} s on this item (item_timeout_s); its worker "
                                             "was stopped"))
            continue
        try:
            for path, sized in _local_inputs(item):
                check_input_file(path, max_bytes if sized else None)
        except LimitExceeded as exc:
            out.append(item.filter(stage.name, str(exc)))
            continue
        except NotRegularFile as exc:
            out.append(item.fail(stage.name, str(exc)))
            continue
        except OSError:
            pass  # missing or unreadable: the stage's own error says it best
        ready.append((item, mark))
    if not ready:
        return out
    if len(ready) > 1 and any(mark == "suspect" for _, mark in ready):
        # an earlier attempt of this batch got stuck: find the culprit one item at a time
        return out + [it for item, _ in ready for it in guard_stage_call(stage, [item])]
    batch = [item for item, _ in ready]
    limit = limit_per_item * len(batch)
    try:
        result = _call_with_limit(lambda: stage.process_batch(batch), limit, records, [i.key for i in batch])
    except ItemTimeout:
        if len(batch) > 1:  # the runtime retries one by one: the slow item gets the timeout row
            raise TimeoutError(f"batch of {len(batch)} ran over {limit:g} s") from None
        return out + [batch[0].fail(stage.name, f"timeout: stage {stage.name} ran over {limit:g} s on this "
                                                "item (item_timeout_s)")]
    except LimitExceeded as exc:
        if len(batch) > 1:
            raise
        return out + [batch[0].filter(stage.name, str(exc))]
    return out + result


def grace_for(limit_s: float) -> float:
    return min(MAX_GRACE_S, max(MIN_GRACE_S, 0.25 * limit_s))


def _call_with_limit(fn, limit_s: float, records: "_Records", keys: list[str]) -> Any:
    dog = _Watchdog(limit_s, grace_for(limit_s), lambda: _recycle_worker(records, keys, limit_s))
    try:
        with dog:
            return fn()
    finally:
        dog.done.set()


class _Watchdog:
    """Raises ItemTimeout in the calling thread after `limit_s`; after `grace_s` more, calls `on_stuck`.

    On the main thread (Ray tasks and actors run there) the timeout is a SIGALRM sent to that thread: it
    interrupts sleeping and blocked system calls too; elsewhere an asynchronous exception (Python code only)."""

    def __init__(self, limit_s: float, grace_s: float, on_stuck):
        self.limit_s, self.grace_s, self.on_stuck = limit_s, grace_s, on_stuck
        self.done = threading.Event()
        self.armed = False
        self.lock = threading.Lock()
        self.tid = threading.get_ident()
        self.main = threading.current_thread() is threading.main_thread()
        self.old_handler = None

    def __enter__(self):
        if self.main:
            self.old_handler = signal.signal(signal.SIGALRM, self._on_alarm)
        self.armed = True
        threading.Thread(target=self._watch, name="vidrd-item-watchdog", daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.armed = False  # first: a late alarm is ignored from here on
        with self.lock:
            if not self.main:
                _async_raise(self.tid, None)  # clear a pending asynchronous ItemTimeout, if any
        if self.main and self.old_handler not in (signal.SIG_DFL, None):
            # never back to SIG_DFL: a late SIGALRM would end the process; ours ignores it once disarmed
            signal.signal(signal.SIGALRM, self.old_handler)
        return False

    def _on_alarm(self, signum, frame):
        if self.armed:
            raise ItemTimeout(f"over {self.limit_s:g} s")

    def _watch(self) -> None:
        if self.done.wait(self.limit_s):
            return
        with self.lock:
            if not self.armed:
                return
            if self.main:
                signal.pthread_kill(self.tid, signal.SIGALRM)
            else:
                _async_raise(self.tid, ItemTimeout)
        if not self.done.wait(self.grace_s):
            self.on_stuck()


def _async_raise(tid: int, exc_type) -> None:
    import ctypes

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(exc_type) if exc_type else None)


def _recycle_worker(records: "_Records", keys: list[str], limit_s: float) -> None:
    """Stuck in C past the grace period: remember the keys on this node, then end this worker process."""
    try:
        records.put(keys, "stuck" if len(keys) == 1 else "suspect")
    except OSError as exc:  # unrecorded: the retry gets stuck again, and Ray's finite retries end it ("lost")
        log.error("cannot record the stuck item(s) %s: %s", keys, exc)
    if not _in_ray_worker():
        log.error("stage %s stuck on %s for over %.0f s (not a Ray worker: left running)", records.stage, keys, limit_s)
        return
    log.error("stage %s stuck in native code on %s for over %.0f s: stopping this worker (Ray retries its task)",
              records.stage, keys, limit_s)
    os.kill(os.getpid(), signal.SIGKILL)


def _in_ray_worker() -> bool:
    try:
        import ray._private.worker as w
    except ImportError:
        return False
    return w.global_worker.connected and w.global_worker.mode == w.WORKER_MODE


class _Records:
    """Node-local marks of items whose call got stuck, per Ray job and stage (read by the retried task)."""

    def __init__(self, stage: str):
        self.stage = stage
        self.dir = Path(tempfile.gettempdir()) / f"vidrd-item-guard-{os.getuid()}" / _job_scope()

    def _path(self, key: str) -> Path:
        return self.dir / hashlib.sha1(f"{self.stage}\0{key}".encode()).hexdigest()

    def get(self, key: str) -> str | None:
        try:
            return self._path(key).read_text().strip() or None
        except OSError:
            return None

    def put(self, keys: list[str], mark: str) -> None:
        top = self.dir.parent
        top.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(top)
        if stat.S_ISLNK(st.st_mode) or st.st_uid != os.getuid():  # a shared /tmp: never write through another's dir
            raise PermissionError(f"{top} is not a private directory of this user")
        self.dir.mkdir(mode=0o700, exist_ok=True)
        for key in keys:
            if self.get(key) != "stuck":  # a single-item verdict is never weakened to a batch suspicion
                self._path(key).write_text(mark)


def _job_scope() -> str:
    """Node + job: a retried task of this build sees the marks; another build (a fresh job id) does not."""
    try:
        import ray

        if ray.is_initialized():
            ctx = ray.get_runtime_context()
            return f"{ctx.get_node_id()[:16]}-{ctx.get_job_id()}"
    except Exception:  # noqa: BLE001 - no Ray: a process-local scope
        pass
    return f"local-{os.getpid()}"
