"""Per-task scratch folders on the local disk (a long video's clip frames between its scan and its cut).

A chunk task that makes scratch files owns them: `run_stages` takes a `mark()` when it starts and `release(mark)`
removes every folder made since when it ends (its split siblings only read them, and it waits for them). The
folders are private (0700) under `<tmp>/vidrd-scratch/<run id>/`, and the driver removes its run's folder when
the build ends, which also takes what a killed worker left on the driver's machine.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

_OWNED: list[Path] = []  # this process's folders, in the order made


def root() -> Path:
    return Path(tempfile.gettempdir()) / "vidrd-scratch"


def new_dir(run_id: str) -> Path:
    """A fresh private folder for this task's scratch files."""
    base = root() / (run_id or "local")
    base.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(dir=base))  # mode 0700: frames of a user's videos are theirs alone
    _OWNED.append(d)
    return d


def mark() -> int:
    return len(_OWNED)


def release(since: int) -> None:
    """Remove the folders made since `mark()` returned `since`."""
    for d in _OWNED[since:]:
        shutil.rmtree(d, ignore_errors=True)
    del _OWNED[since:]


def remove_run(run_id: str) -> None:
    """The driver at the end of a build: whatever of this run is left on this machine."""
    if run_id:
        shutil.rmtree(root() / run_id, ignore_errors=True)


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free
