"""Operator errors: the machine, not an input, stops the build (disk full, quota, read-only output).

Such an error ends `vidrd-data build` with one line naming the path and the cause and exit code
EXIT_OS_ERROR; committed shards stay valid (each is committed by its `_stats.json`, written last) and the
same command, rerun once the cause is fixed, resumes. Every exit code of both commands: README.
"""

from __future__ import annotations

import errno
import os

EXIT_OK, EXIT_SETUP, EXIT_FAILURES, EXIT_OS_ERROR, EXIT_INTERRUPTED = 0, 2, 3, 4, 130

# Errors of the output's filesystem: every later write would fail the same way, so the build stops.
OUTPUT_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EFBIG)
                          if e is not None)


class OutputUnwritable(OSError):
    """The output's filesystem refuses writes (OUTPUT_ERRNOS): raised by the build to stop before more work."""


def find_os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind `exc`: itself, the `cause` of a Ray task error (a worker's exception), or a chained one."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError: the worker's own exception
        if isinstance(cause, BaseException):
            exc = cause
            continue
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def output_unwritable(exc: BaseException) -> OSError | None:
    """The OSError behind `exc` when it is one of the output filesystem's (disk full, quota, read-only)."""
    err = find_os_error(exc)
    return err if err is not None and err.errno in OUTPUT_ERRNOS else None


def one_line(err: OSError, where: str | os.PathLike | None = None) -> str:
    """`error: PATH: cause [ENOSPC]; ...` naming the file when the error has one, else `where` (the output)."""
    path = err.filename or where or "?"
    cause = err.strerror or str(err)
    code = errno.errorcode.get(err.errno, str(err.errno)) if err.errno is not None else "?"
    return (f"error: {path}: {cause} [{code}]; committed shards are intact: fix the cause and rerun the same "
            f"command to resume")
