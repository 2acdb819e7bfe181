"""An exclusive lock on an open file, taken without waiting; the operating system releases it
when its process exits, killed or not (``flock`` on POSIX, ``msvcrt.locking`` on Windows).

:func:`claim_directory` uses it so that one log directory has one writer at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import IO, Any

__all__ = ["DIRECTORY_LOCK", "claim_directory", "release", "try_lock", "unlock"]

log = logging.getLogger("vizcallbacks")

DIRECTORY_LOCK = ".vizcallbacks-writer.lock"  # held by the one writer writing that directory

try:  # POSIX
    import fcntl

    def try_lock(handle: Any) -> bool:
        """Lock ``handle``'s file for this process alone; False if another holder has it."""
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def unlock(handle: Any) -> None:
        """Release the lock :func:`try_lock` took."""
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def try_lock(handle: Any) -> bool:
        """Lock ``handle``'s file for this process alone; False if another holder has it."""
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True

    def unlock(handle: Any) -> None:
        """Release the lock :func:`try_lock` took."""
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]


def _lock_in(directory: Path) -> IO[bytes] | None:
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / DIRECTORY_LOCK, "a+b")  # noqa: SIM115 (held until release)
    if try_lock(handle):
        with contextlib.suppress(OSError):  # who holds it, for a curious reader; not needed
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n".encode())
            handle.flush()
        return handle
    handle.close()
    return None


def claim_directory(directory: Path, what: str) -> tuple[Path, IO[bytes]]:
    """Lock ``directory`` for one writer; while another writer (this process or another) holds
    it, lock a new sub-directory instead, say so in one line, and return it with its lock."""
    handle = _lock_in(directory)
    if handle is not None:
        return directory, handle
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-pid{os.getpid()}"
    for n in range(1, 1000):
        own = directory / (stamp if n == 1 else f"{stamp}-{n}")
        if own.exists():
            continue
        handle = _lock_in(own)
        if handle is not None:
            log.warning(
                "vizcallbacks: %s: %s is being written by another writer (another process or "
                "another writer in this one); this one writes to %s instead, so no step is "
                "logged twice into one run.",
                what,
                directory,
                own,
            )
            return own, handle
    raise OSError(f"{what}: no free sub-directory of {directory} to write to")


def release(handle: IO[bytes]) -> None:
    """Let go of a directory :func:`claim_directory` locked."""
    with contextlib.suppress(OSError):
        unlock(handle)
    handle.close()
