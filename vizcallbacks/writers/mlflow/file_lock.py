"""An exclusive lock on an open file, taken without waiting; the operating system releases it
when its process exits, killed or not (``flock`` on POSIX, ``msvcrt.locking`` on Windows)."""

from __future__ import annotations

from typing import Any

__all__ = ["try_lock", "unlock"]

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
