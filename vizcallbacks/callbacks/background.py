"""A single background thread that renders and writes, so ``on_epoch_end`` returns quickly."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["BackgroundQueue", "warn_once"]

log = logging.getLogger("vizcallbacks")

_MAX_HOLD_SECONDS = 2.0

_warned: set[tuple[int, str]] = set()
_warned_lock = threading.Lock()


def warn_once(owner: object, key: str, message: str, *args: Any) -> None:
    """Log ``message`` as a warning the first time ``owner`` reports ``key``, never again."""
    with _warned_lock:
        if (id(owner), key) in _warned:
            return
        _warned.add((id(owner), key))
    log.warning(message, *args)


class BackgroundQueue:
    """Runs jobs one after another, in order, off the training thread.

    A job that raises is reported once per ``key`` and dropped: visualization never stops
    training. ``drain()`` waits for everything submitted so far. Between ``hold()`` and
    ``release()`` jobs wait: the callbacks hold them while Keras is still inside
    ``on_epoch_end``, so rendering does not compete for the GIL with the other callbacks there.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._released = threading.Event()
        self._released.set()
        self._steps: deque[tuple[int, Future[None]]] = deque()  # step jobs not yet finished

    def hold(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def submit(self, key: str, job: Callable[..., None], *args: Any) -> Future[None]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        return self._executor.submit(self._run, key, job, *args)

    def submit_step(
        self, step: int, keep: int, key: str, job: Callable[..., None], *args: Any
    ) -> list[int]:
        """Queue the job of ``step``; if more than ``keep`` steps now wait, skip the oldest
        waiting ones (never this newest). Returns the steps skipped: memory stays flat when
        publishing is slower than training."""
        self._steps.append((step, self.submit(key, job, *args)))
        return self.skip_waiting(keep)

    def skip_waiting(self, keep: int) -> list[int]:
        """Cancel step jobs that have not started, oldest first, until at most ``keep`` wait;
        the newest step is never skipped. Returns the steps skipped."""
        while self._steps and self._steps[0][1].done():
            self._steps.popleft()
        waiting = [(s, f) for s, f in self._steps if not f.running() and not f.done()]
        skipped = []
        for step, future in waiting[: max(0, len(waiting) - max(keep, 1))]:
            if future.cancel():
                skipped.append(step)
        return skipped

    def _run(self, key: str, job: Callable[..., None], *args: Any) -> None:
        # Bounded, so that an interrupted fit whose queue nobody releases cannot hang exit.
        self._released.wait(timeout=_MAX_HOLD_SECONDS)
        try:
            job(*args)
        except Exception as err:  # a view must never kill training
            warn_once(self, key, "vizcallbacks: skipped %s (%s: %s)", key, type(err).__name__, err)

    def drain(self) -> None:
        """Wait for every submitted job, then stop the thread (it restarts on the next submit)."""
        self.release()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._steps.clear()
