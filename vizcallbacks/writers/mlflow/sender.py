"""The background sender: delivers what the spool holds, in rounds, backing off while the server
does not answer, and stepping aside while ``python -m vizcallbacks sync`` holds the spool's lock.

The callbacks never wait for it; ``wait()`` and the writer's ``close()`` do.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from vizcallbacks.mlflow_store.server import import_mlflow, probe
from vizcallbacks.writers.mlflow.delivery import ROUND_ITEMS, deliver
from vizcallbacks.writers.mlflow.spool import Spool
from vizcallbacks.writers.mlflow.target import ensure_run

__all__ = ["Notices", "Sender"]

log = logging.getLogger("vizcallbacks")

LINGER = 0.2  # let a step's items gather before a round
DOWN_TRIES = 3  # failed probes in a row before closing gives up on a server that answered before


class Notices:
    """Warnings given once per key, so a long outage is one message, not one per round."""

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._told: set[str] = set()

    def first(self, key: str) -> bool:
        """True the first time ``key`` is seen (and remember it)."""
        with self._lock:
            if key in self._told:
                return False
            self._told.add(key)
            return True

    def warn(self, key: str, message: str, *args: Any) -> None:
        """Log ``message % args`` as a warning, unless ``key`` was warned about before."""
        if self.first(key):
            log.warning(message, *args)


class Sender:
    """A daemon thread delivering ``spool`` to the run of ``record``; state guarded by ``lock``.

    The writer sets ``spool`` and ``record`` (with :meth:`use`) and calls :meth:`start`,
    :meth:`wake` after each item, and :meth:`finish` at close. The thread ends once closing and
    nothing more can be sent; a writer used again starts a new one.
    """

    def __init__(self, lock: threading.RLock, retry_interval: float, notices: Notices) -> None:
        self.lock = lock
        self.retry_interval = retry_interval
        self.notices = notices
        self.settled = threading.Condition(lock)  # notified after every delivery round
        self.spool: Spool | None = None
        self.record: dict[str, Any] | None = None
        self.down = False  # the server did not answer the last time we asked
        self.answered = False  # it answered at least once: a failed probe may be a blip
        self.downs = 0  # failed probes in a row
        self.closing = False
        self.close_deadline = 0.0
        self.thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._in_round = False
        self._attempted: set[int] = set()  # failed once: check the server before resending
        self._rejected: dict[int, str] = {}
        self._client: Any = None

    def use(self, spool: Spool | None) -> None:
        """Deliver ``spool`` from now on (ids restart in a new spool)."""
        with self.lock:
            self.spool = spool
            self._attempted.clear()
            self._rejected.clear()

    def start(self) -> None:
        """Start the thread unless it runs."""
        with self.lock:
            self.closing = False
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._loop, name="vizcallbacks-mlflow-sender", daemon=True
                )
                self.thread.start()

    def wake(self) -> None:
        """Tell the thread that something new waits."""
        self._wake.set()

    def finish(self, timeout: float) -> None:
        """Let the thread send what it can within ``timeout`` s, then wait for it to end."""
        with self.lock:
            self.closing = True
            self.close_deadline = time.monotonic() + timeout
            thread = self.thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout=timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until everything spooled is delivered (refusals aside); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self.settled:
            while self.spool is not None and (self._in_round or self.deliverable()):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self.settled.wait(timeout=0.5 if remaining is None else min(0.5, remaining))
                self._wake.set()
        return True

    def deliverable(self) -> list[dict[str, Any]]:
        """Pending items MLflow did not refuse."""
        spool = self.spool
        if spool is None:
            return []
        return [it for it in spool.pending() if it["id"] not in self._rejected]

    def _loop(self) -> None:
        delay: float | None = None
        while True:
            self._wake.wait(timeout=delay)
            self._wake.clear()
            if not self.closing:
                time.sleep(LINGER)
            try:
                outcome = self._round()
            except Exception as err:  # never let the sender die silently
                self.notices.warn("sender", "vizcallbacks: MLflow sender error (%s); retrying", err)
                outcome = "down"
            with self.lock:
                self._in_round = False
                self.settled.notify_all()
                delay = self._next_delay(outcome, delay)
                give_up = (
                    not self._worth_retrying(outcome) or time.monotonic() > self.close_deadline
                )
                if self.closing and outcome != "sent" and give_up:
                    self.thread = None  # decided under the lock: a reopen starts a new sender
                    self.settled.notify_all()
                    return
            if outcome == "sent":
                self._wake.set()

    def _worth_retrying(self, outcome: str) -> bool:
        """While closing: some items failed, or a server that answered before missed one probe
        (a flaky server, not a dead one), fewer than ``DOWN_TRIES`` times in a row."""
        self.downs = self.downs + 1 if outcome == "down" else 0
        blip = outcome == "down" and self.answered and self.downs < DOWN_TRIES
        return outcome == "retry" or blip

    def _next_delay(self, outcome: str, delay: float | None) -> float | None:
        """Straight on after a success, doubling pauses up to ``retry_interval`` after a miss."""
        if outcome == "sent":
            return 0.0
        if outcome in ("down", "busy", "retry"):
            return min(self.retry_interval, max(0.5, 2 * (delay or 0.25)))
        return None

    def send_now(self, seconds: float) -> None:
        """Deliver on the calling thread for at most about ``seconds`` s, without new threads.

        For interpreter exit, when the thread may be stuck and no executor may start: stops the
        thread first, then sends round after round while the server takes them.
        """
        deadline = time.monotonic() + seconds
        self.finish(min(1.0, seconds / 4))
        while time.monotonic() < deadline:
            try:
                outcome = self._round(parallel=False, lock_wait=1.0)
            except Exception as err:
                log.debug("vizcallbacks: delivery at exit failed: %s", err)
                return
            finally:
                with self.lock:
                    self._in_round = False
            if outcome != "sent" and not self._worth_retrying(outcome):
                return
            if outcome != "sent":
                time.sleep(0.5)

    def _round(self, parallel: bool = True, lock_wait: float = 0.0) -> str:
        """One delivery attempt: ``"sent"``, ``"idle"`` (nothing to do), ``"down"`` (no answer),
        ``"retry"`` (the server answered but some items failed), ``"busy"`` (``sync`` has it)."""
        with self.lock:
            spool, record = self.spool, self.record
            if spool is None or record is None:
                return "idle"
            spool.refresh()
            if not self.deliverable():
                return "idle"
            self._in_round = True
        if not self._server_answers(spool, record["tracking_uri"]):
            return "down"
        with spool.lock(timeout=lock_wait) as acquired:
            if not acquired:
                return "busy"  # `python -m vizcallbacks sync` is delivering this spool
            return self._send(spool, record["tracking_uri"], parallel)

    def _server_answers(self, spool: Spool, uri: str) -> bool:
        """Probe the server; say once when it stops answering and when it is back."""
        reason = probe(uri)
        if reason is not None:
            if not self.down:
                self.down = True
                self.notices.warn(
                    "down",
                    "vizcallbacks: the MLflow tracking server at %s stopped answering (%s); "
                    "training goes on, items wait in %s and are retried.",
                    uri,
                    reason,
                    spool.directory.resolve(),
                )
            return False
        self.answered = True
        if self.down:
            self.down = False
            log.info("vizcallbacks: MLflow at %s answers again; sending", uri)
        return True

    def _send(self, spool: Spool, uri: str, parallel: bool = True) -> str:
        """Deliver one round of items while holding the spool's lock."""
        spool.refresh()
        items = self.deliverable()[:ROUND_ITEMS]
        if not items:
            return "idle"
        if self._client is None:  # one client: its store owns MLflow's async logging queue
            self._client = import_mlflow().MlflowClient(uri)
        try:
            run_id = ensure_run(self._client, spool)
        except Exception as err:
            log.debug("vizcallbacks: could not create the MLflow run yet: %s", err)
            return "down"
        report = deliver(
            self._client, run_id, spool, items, recheck_images=self._attempted, parallel=parallel
        )
        spool.mark_delivered(report.delivered)
        self._attempted -= report.delivered
        self._attempted |= set(report.failed)
        self._rejected.update(report.rejected)
        for name, why in report.refused.items():
            self.notices.warn(
                f"refused {name}",
                "vizcallbacks: MLflow refused %s (%s); it is left out, never retried, and "
                "everything else goes on.",
                name,
                why,
            )
        return "retry" if report.failed else "sent"
