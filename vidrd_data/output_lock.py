"""One build per output: an exclusive lock file `OUT/.vidrd-build.lock` (host, pid, lease) held while building.

Created atomically (O_EXCL) on a local output; a second build finds it and refuses, naming the holder. The holder
renews its lease every `LEASE_S / 3` seconds; a lock whose lease ran out (its build was killed, its machine lost),
or whose process is gone on this same host, is taken over. On an object store the check is best effort (no
atomic create): run one build per output there.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

import psutil

from vidrd_format.shards import url_to_fs

LOCK_NAME = ".vidrd-build.lock"
LEASE_S = float(os.environ.get("VIDRD_LOCK_LEASE_S", "60"))


class OutputLocked(RuntimeError):
    """Another build holds the output."""


class OutputLock:
    def __init__(self, output: str, lease_s: float = LEASE_S):
        self.fs, self.root = url_to_fs(output)
        self.path = f"{self.root}/{LOCK_NAME}"
        self.lease_s = lease_s
        self.token = uuid.uuid4().hex
        self.local = "Local" in type(self.fs).__name__
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> bytes:
        now = time.time()
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                           "started": getattr(self, "_started", now), "lease_until": now + self.lease_s}).encode()

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.fs.cat_file(self.path))
        except (FileNotFoundError, ValueError):
            return None

    def _stale(self, h: dict) -> bool:
        if h.get("lease_until", 0) < time.time():
            return True
        return h.get("host") == socket.gethostname() and not psutil.pid_exists(int(h.get("pid", -1)))

    def _create(self) -> bool:
        if not self.local:
            if self.fs.exists(self.path):
                return False
            self.fs.pipe_file(self.path, self._record())
            return True
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(self._record())
        return True

    def acquire(self) -> "OutputLock":
        self.fs.makedirs(self.root, exist_ok=True)
        self._started = time.time()
        for _ in range(2):
            if self._create():
                self._thread = threading.Thread(target=self._renew, daemon=True, name="vidrd-lock-lease")
                self._thread.start()
                return self
            h = self._holder()
            if h is None or self._stale(h):
                self.fs.rm(self.path)  # the holder is gone: take over
                continue
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.get("started", 0)))
            raise OutputLocked(f"output {self.root} is being built by another build: host {h.get('host')} pid "
                               f"{h.get('pid')} since {since} (lock file {self.path}, lease renewed every "
                               f"{self.lease_s / 3:.0f} s). Wait for it to finish; if that build is gone, its lease "
                               f"runs out within {self.lease_s:.0f} s, or delete the lock file.")
        raise OutputLocked(f"output {self.root}: could not take the lock {self.path}")

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            h = self._holder()
            if h is None or h.get("token") != self.token:
                return  # taken over (we were presumed dead): stop renewing what is not ours
            tmp = f"{self.path}.{self.token[:12]}.tmp"
            self.fs.pipe_file(tmp, self._record())
            self.fs.mv(tmp, self.path)

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        h = self._holder()
        if h is not None and h.get("token") == self.token:
            self.fs.rm(self.path)

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
