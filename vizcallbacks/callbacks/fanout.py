"""One typed fan-out from a callback to its writers, and the rule for closing shared writers.

Ownership: every callback that uses a writer holds it from ``on_train_begin`` until it is done
(``on_train_end`` or ``finish()``); the writer is closed exactly once, when its last holder lets
go. A second ``fit`` opens it again (TensorBoard: one new event file per ``fit``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

from vizcallbacks.callbacks.background import warn_once
from vizcallbacks.records import Record
from vizcallbacks.writers.base import Writer

__all__ = ["FanOut"]

_holders: dict[int, set[int]] = {}  # id(writer) → ids of the fan-outs holding it open
_holders_lock = threading.Lock()


class FanOut:
    """Gives each record to every writer; a failing writer is reported once, the rest go on."""

    def __init__(self, writers: Sequence[Writer]) -> None:
        self.writers = list(writers)
        self._held = False

    def open(self) -> None:
        """Check every writer (raising before training on bad settings) and hold it open."""
        for writer in self.writers:
            writer.check()
        with _holders_lock:
            for writer in self.writers:
                _holders.setdefault(id(writer), set()).add(id(self))
            self._held = True

    def write(self, records: Sequence[Record], step: int) -> None:
        if not records:
            return
        for writer in self.writers:
            with _reported(writer, "write"):
                writer.write(records, step)

    def flush(self) -> None:
        for writer in self.writers:
            with _reported(writer, "flush"):
                writer.flush()

    def release(self) -> None:
        """Let go of every writer; close those no other fan-out holds. Safe to call twice."""
        with _holders_lock:
            if not self._held:
                return
            self._held = False
            last = []
            for writer in self.writers:
                holders = _holders.get(id(writer), set())
                holders.discard(id(self))
                if not holders:
                    _holders.pop(id(writer), None)
                    last.append(writer)
        for writer in last:
            with _reported(writer, "close"):
                writer.close()


@contextlib.contextmanager
def _reported(writer: Writer, method: str) -> Iterator[None]:
    """Report a failing writer once per method and go on: a sink never stops training."""
    try:
        yield
    except Exception as err:
        warn_once(
            writer,
            method,
            "vizcallbacks: %s.%s failed (%s: %s); other writers go on",
            type(writer).__name__,
            method,
            type(err).__name__,
            err,
        )
