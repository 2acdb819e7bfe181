"""The writer protocol: the only thing callbacks know about where pictures and numbers go."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from vizcallbacks.records import Record

__all__ = ["Writer", "check_log_dir", "check_writers"]


@runtime_checkable
class Writer(Protocol):
    """A sink for records (:mod:`vizcallbacks.records`), each written at a step.

    ``check()`` runs on the training thread before the first step and raises on bad settings;
    ``last_step()`` then says the highest step already logged where the writer logs (-1 if
    none), so that a resumed run goes on after it instead of logging a step twice.
    Implementations open their resources on first use, keep nothing the user logged from being
    lost when the backend fails, and accept ``close()`` more than once; callbacks that share a
    writer close it once, when the last of them is done (see ``callbacks/fanout.py``).
    A writer may also have ``mark_unfinished()``, called before ``close()`` when training
    stopped before its end (``finish()`` after an interrupted ``fit``).
    """

    def check(self) -> None: ...

    def last_step(self) -> int: ...

    def write(self, records: Sequence[Record], step: int) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def check_writers(writers: object) -> list[Writer]:
    """Return ``writers`` as a list, or raise naming what is wrong with it."""
    if isinstance(writers, Writer):
        return [writers]
    if not isinstance(writers, (list, tuple)):
        raise TypeError(
            "writers must be a list of writers such as [vc.TensorBoardWriter('logs')]. "
            f"Received: writers={writers!r}"
        )
    if not writers:
        raise ValueError(
            "writers is empty: nothing would be logged. Pass at least one writer, "
            "for example writers=[vc.TensorBoardWriter('logs')]."
        )
    for i, writer in enumerate(writers):
        if not isinstance(writer, Writer):
            raise TypeError(
                f"writers[{i}] is not a writer (it needs check, last_step, write, flush and "
                "close; see vizcallbacks.Writer). "
                f"Received: {writer!r} of type {type(writer).__name__}"
            )
    return list(writers)


def check_log_dir(path: Path, what: str) -> None:
    """Create ``path`` and prove it writable, or raise ``ValueError`` naming it and the fix."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(
            f"{what}: cannot create or write the log directory {str(path)!r} ({err}). "
            "Choose a directory you can write to."
        ) from err
