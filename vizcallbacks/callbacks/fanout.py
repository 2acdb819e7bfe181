"""One typed fan-out from a callback to its writers, and the rule for closing shared writers.

Ownership: every callback that uses a writer holds it from ``on_train_begin`` until it is done
(``on_train_end`` or ``finish()``); the writer is closed exactly once, when its last holder lets
go. A second ``fit`` opens it again (TensorBoard: one new event file per ``fit``).
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator, Sequence

from vizcallbacks.callbacks.background import warn_once
from vizcallbacks.records import Record
from vizcallbacks.writers.base import Writer

__all__ = ["FanOut"]

# Weak, not by id(): a writer or fan-out dropped without release (a fit that raised) must not
# leave its claims to a new object that happens to get the same address.
_holders: weakref.WeakKeyDictionary[Writer, weakref.WeakSet[FanOut]] = weakref.WeakKeyDictionary()
# writer → what each holder writes there: claim → (the fan-out, who it is)
_claims: weakref.WeakKeyDictionary[
    Writer, dict[tuple[str, ...], tuple[weakref.ref[FanOut], str]]
] = weakref.WeakKeyDictionary()
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
                _holders.setdefault(writer, weakref.WeakSet()).add(self)
            self._held = True

    def last_step(self) -> int:
        """The highest step any writer already holds (-1 for a new log)."""
        return max(writer.last_step() for writer in self.writers)

    def claim(
        self, owner: str, claims: set[tuple[str, ...]], shared: set[tuple[str, ...]]
    ) -> set[tuple[str, ...]]:
        """Reserve what ``owner`` writes (``(kind, layer, probe)``-like keys) on every writer.

        Two loggers whose ``claims`` meet on one writer are refused here, before the first step,
        naming both. Of the ``shared`` keys, returns those no other holder took first.
        """
        me = weakref.ref(self)
        with _holders_lock:
            for writer in self.writers:
                taken = _claims.setdefault(writer, {})
                for claim in sorted(claims):
                    holder, other = taken.get(claim, (me, owner))
                    if holder() not in (self, None):  # None: its fan-out is gone
                        raise ValueError(
                            f"{owner} and {other} would both write {'/'.join(claim)} to "
                            f"{type(writer).__name__}: one would overwrite the other. Log both "
                            "probes with one logger (a batch, with probe_names=), split layers= "
                            "between the loggers, or give each its own writer."
                        )
            won = {
                key
                for key in shared
                if all(_claims[w].get(key, (me,))[0]() in (self, None) for w in self.writers)
            }
            for writer in self.writers:
                _claims[writer].update(dict.fromkeys(claims | won, (me, owner)))
            return won

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

    def mark_unfinished(self) -> None:
        """Tell the writers that can hear it (``mark_unfinished()``) that training stopped early."""
        for writer in self.writers:
            mark = getattr(writer, "mark_unfinished", None)
            if callable(mark):
                with _reported(writer, "mark_unfinished"):
                    mark()

    def release(self) -> None:
        """Let go of every writer; close those no other fan-out holds. Safe to call twice."""
        with _holders_lock:
            if not self._held:
                return
            self._held = False
            last = []
            for writer in self.writers:
                taken = _claims.get(writer, {})
                for claim in [c for c, (holder, _) in taken.items() if holder() in (self, None)]:
                    del taken[claim]
                holders = _holders.get(writer, weakref.WeakSet())
                holders.discard(self)
                if not holders:
                    _holders.pop(writer, None)
                    _claims.pop(writer, None)
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
