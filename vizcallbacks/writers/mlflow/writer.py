"""MLflow writer: images with a step slider, metrics, options and nothing lost: items wait in a
spool on disk for a sending thread (``spool.py``, ``sender.py``); ``sync`` replays the rest."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vizcallbacks.messages import say
from vizcallbacks.mlflow_store.server import import_mlflow, is_remote
from vizcallbacks.records import File, Histogram, Image, Params, Record, Scalars, Text
from vizcallbacks.writers.base import check_log_dir
from vizcallbacks.writers.mlflow.arguments import (
    check_arguments,
    check_key,
    checked_metrics,
    seconds,
)
from vizcallbacks.writers.mlflow.entries import (
    file_entry,
    image_entry,
    metrics_entry,
    option_tags,
    text_entry,
)
from vizcallbacks.writers.mlflow.histograms import HistogramFiles, quantile_metrics
from vizcallbacks.writers.mlflow.lifecycle import (
    EXIT_SECONDS,
    call_at_exit,
    exit_status,
    forget_at_exit,
    logged_last_step,
    spooled_last_step,
)
from vizcallbacks.writers.mlflow.sender import Notices, Sender
from vizcallbacks.writers.mlflow.spool import Entry, Spool, SpoolWriteError, describe_items
from vizcallbacks.writers.mlflow.target import (
    VERSION_TAG,
    check_run_id,
    now_ms,
    plan_run,
    reach_run,
    spool_directory,
)
from vizcallbacks.writers.run_report import log_run_report

__all__ = ["MLflowWriter", "SpoolWriteError"]

log = logging.getLogger("vizcallbacks")


class MLflowWriter:
    """Log to an MLflow run: images with a per-step slider, scalars as metrics, parameters once.

    With nothing given it follows MLflow's own rules: ``MLFLOW_TRACKING_URI`` or MLflow's default
    local store (``sqlite:///mlflow.db`` in MLflow 3), the active run if there is one (left open),
    else a new run in ``experiment_name`` (or MLflow's current experiment) that is ended at close.

    Args:
        tracking_uri: MLflow tracking URI; ``None`` uses ``mlflow.get_tracking_uri()``.
        experiment_name: experiment of the run this writer creates (ignored with an active run).
        run_id: log into this existing run instead, and leave it open.
        run_name: name of the run this writer creates.
        spool_dir: where items wait on local disk until the server confirms them; each writer
            uses its own sub-directory, removed once everything is delivered.
        on_unreachable: a server that does not answer at train start is reported, then
            ``"spool"`` (default) trains anyway and sends later, ``"raise"`` stops ``fit`` with a
            ``ConnectionError`` before the first step.
        close_timeout: seconds ``close()`` waits for a server that answers to take the rest.
        retry_interval: longest pause, in seconds, between attempts while the server is down.
        report: at close, once all arrived, log the run's one-file HTML dashboard as an artifact
            (built by the read side, through :mod:`vizcallbacks.writers.run_report`).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str | None = None,
        run_id: str | None = None,
        run_name: str | None = None,
        spool_dir: str | Path = "vizcallbacks-spool",
        on_unreachable: str = "spool",
        close_timeout: float = 60.0,
        retry_interval: float = 10.0,
        report: bool = False,
    ) -> None:
        import_mlflow()  # fail at construction, with the install hint, not at train end
        names = {
            "tracking_uri": tracking_uri,
            "experiment_name": experiment_name,
            "run_id": run_id,
            "run_name": run_name,
        }
        check_arguments(names, spool_dir, on_unreachable)
        check_run_id(run_id)
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_id = run_id
        self.run_name = run_name
        self.spool_dir = Path(spool_dir)
        self.on_unreachable = on_unreachable
        self.close_timeout = seconds("close_timeout", close_timeout)
        self.retry_interval = seconds("retry_interval", retry_interval)
        self.report = bool(report)

        self._lock = threading.RLock()
        self._notices = Notices(self._lock)
        self._sender = Sender(self._lock, self.retry_interval, self._notices)
        self._open = False
        self._histograms = HistogramFiles()
        self._params: dict[str, str] = {}
        self._unfinished: str | None = None  # KILLED or FAILED: training stopped before its end
        self._resume_step: int | None = None  # what was logged before this fit; reset at close
        self._last_written = -1

    @property
    def logged_run_id(self) -> str | None:
        """The run this writer logs to; None before training, or until a server that was down
        has created it."""
        with self._lock:
            spool, record = self._sender.spool, self._sender.record
            record = spool.run if spool is not None else record
            return None if record is None else record.get("run_id")

    # Opening -----------------------------------------------------------------------------------
    def check(self) -> None:
        """Before training: check ``spool_dir``, reach the server, find or create the run.

        A server that does not answer is reported here, then training goes on or stops as
        ``on_unreachable`` says. Called by the callbacks on the training thread, where
        ``mlflow.active_run()`` is visible. A spool that cannot be written (a full disk) is not
        an error yet: ``write()`` raises it, so the callbacks report it once and training goes on.
        """
        try:
            self._ensure_open()
        except SpoolWriteError as err:
            log.debug("vizcallbacks: %s", err)

    def _ensure_open(self) -> Spool:
        sender = self._sender
        with self._lock:
            first = sender.record is None
            if sender.record is None:
                sender.record = self._resolve()
            record = sender.record
            if sender.spool is None:
                directory = self.spool_dir.resolve() / record["directory"]
                try:
                    spool = (
                        Spool.open(directory)
                        if (directory / "run.json").is_file()
                        else Spool.create(directory, record)
                    )
                except OSError as err:
                    raise SpoolWriteError(
                        err.errno,
                        f"MLflowWriter cannot write its spool in {directory} ({err}); what is "
                        "logged meanwhile is lost. Free space there or pass another spool_dir=",
                    ) from err
                sender.use(spool)
                if first and not record["owns_run"]:
                    spool.append("tags", {"values": {VERSION_TAG: record["version"]}})
            opened = sender.spool
            assert opened is not None
            if not self._open:
                self._open = True
                with contextlib.suppress(OSError):  # a full disk: sync may end the run early
                    opened.hold_for_writer()
                sender.start()
                call_at_exit(self, "end_at_exit")
            return opened

    def _resolve(self) -> dict[str, Any]:
        """Decide where to log (MLflow's rules), reach the server, and name the spool."""
        check_log_dir(self.spool_dir, "MLflowWriter(spool_dir=...)")
        record = plan_run(self.tracking_uri, self.experiment_name, self.run_id, self.run_name)
        reason = reach_run(record, self.run_id)
        uri = record["tracking_uri"]
        record["directory"] = spool_directory(self.spool_dir, record).name
        if reason is None:
            log.info("vizcallbacks: logging to MLflow run %s at %s", record["run_id"], uri)
            return record
        if self.on_unreachable == "raise":
            raise ConnectionError(
                f"MLflowWriter: the MLflow tracking server at {uri} does not answer "
                f"({reason}). Start it or fix tracking_uri= / MLFLOW_TRACKING_URI; or pass "
                "on_unreachable='spool' to train anyway and send everything when it answers. "
                "Received: on_unreachable='raise'"
            )
        self._sender.down = True
        log.warning(
            "vizcallbacks: the MLflow tracking server at %s does not answer (%s). Training "
            "goes on; everything is kept in %s and sent when the server answers (pass "
            "MLflowWriter(on_unreachable='raise') to stop instead).",
            uri,
            reason,
            self.spool_dir.resolve() / record["directory"],
        )
        return record

    # Writer protocol ---------------------------------------------------------------------------
    def write(self, records: Sequence[Record], step: int) -> None:
        """Spool ``records`` at ``step`` in one write, all their metrics as one item; the sender
        delivers them (``Params`` ignores the step)."""
        step = int(step)
        if any(not isinstance(record, Params) for record in records):
            self._last_written = max(self._last_written, step)
        entries: list[Entry] = []
        metrics: dict[str, float] = {}
        for record in records:
            if isinstance(record, Image):
                entries.append(image_entry(record, step))
            elif isinstance(record, Scalars):
                metrics.update(checked_metrics(record.values))
            elif isinstance(record, Histogram):
                metrics.update(self._histogram(record, step))
            elif isinstance(record, Text):
                entries.append(text_entry(record, step))
            elif isinstance(record, File):
                entries.append(file_entry(record))
            elif isinstance(record, Params):
                entries += self._params_as_tags(record.values)
            else:
                raise TypeError(f"MLflowWriter cannot write {type(record).__name__}: {record!r}")
        if metrics:
            entries.append(metrics_entry(metrics, step))
        if entries:
            self._ensure_open().append_many(entries)
            self._sender.wake()

    def _histogram(self, histogram: Histogram, step: int) -> dict[str, float]:
        """Quantile metrics ``<kind>_p50/<layer>``... to log; the values go to the step's JSON."""
        check_key(histogram.tag, "Histogram tag")
        with self._lock:  # callbacks publish on their own threads: merge a step's layers here
            self._histograms.add(histogram.tag, histogram.values, step)
        return checked_metrics(quantile_metrics(histogram.tag, histogram.values))

    def _params_as_tags(self, params: Mapping[str, Any]) -> list[Entry]:
        """Run options as tags (:func:`option_tags`), each sent once (again if it changes)."""
        fresh: dict[str, str] = {}
        with self._lock:
            for key, text in option_tags(params).items():
                if self._params.get(key) != text:
                    self._params[key] = fresh[key] = text
        return [("tags", {"values": fresh}, None)] if fresh else []

    def flush(self) -> None:
        """Hand the step's histogram file to the sender and wake it; never waits for the network."""
        with self._lock:
            self._flush_histograms()
        self._sender.wake()

    def _flush_histograms(self) -> None:
        """Spool each changed step's histogram file, whole: a later version replaces an earlier."""
        entries: list[Entry] = [
            ("artifact", {"artifact_path": "histograms", "step": step}, (name, data))
            for step, name, data in self._histograms.take_changed()
        ]
        if entries:
            self._ensure_open().append_many(entries)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until everything written so far is delivered; False if ``timeout`` s passed first.

        Useful before reading the run back in the same process. Items MLflow refused do not
        count (they stay in the spool, reported at close).
        """
        return self._sender.wait(timeout)

    def mark_unfinished(self) -> None:
        """Training stopped before its end (Ctrl-C, an exception): ``close()`` ends the run this
        writer started as KILLED or FAILED, not FINISHED."""
        self._unfinished = exit_status()

    def close(self) -> None:
        """End the run this writer started, wait for the server to take the rest, then report.

        Waits at most ``close_timeout`` seconds, and not at all while the server is down; what
        was not delivered is named in one warning with the ``sync`` command that replays it.
        Safe to call twice; writing after ``close()`` reopens the same run.
        """
        sender = self._sender
        with self._lock:
            spool, record = sender.spool, sender.record
            self._resume_step = None  # the next fit asks again
            status, self._unfinished = self._unfinished or "FINISHED", None
            if not self._open or spool is None or record is None:
                return
            forget_at_exit(self)
            try:
                self._flush_histograms()
                if record["owns_run"]:
                    spool.append("end", {"status": status, "end_time": now_ms()})
            except OSError as err:  # a full disk: send what is there, then say what is left
                log.warning("vizcallbacks: MLflowWriter could not spool the run's end: %s", err)
        started = time.monotonic()
        sender.finish(self.close_timeout)
        waited = time.monotonic() - started
        with self._lock:
            self._open = False
            spool.refresh()
            spool.let_go()
            left = spool.pending()
            record = sender.record = spool.run
            if not left and sender.thread is None:
                spool.remove()
                sender.use(None)
        if left:
            self._report_undelivered(spool, left)
        elif self.report:  # built from what the run holds; a failure is only a warning
            log_run_report(str(record["tracking_uri"]), str(record["run_id"]))
        self._announce(record, None if left else waited)

    def end_at_exit(self) -> None:
        """At interpreter exit, for a writer still open (Ctrl-C, an exception): end the run it
        owns as KILLED or FAILED, deliver for a few seconds, and name what is left, last."""
        sender = self._sender
        with self._lock:
            spool, record = sender.spool, sender.record
            if not self._open or spool is None or record is None:
                return
            try:
                self._flush_histograms()
                if record["owns_run"]:
                    spool.append("end", {"status": exit_status(), "end_time": now_ms()})
            except OSError as err:
                log.warning("vizcallbacks: MLflowWriter could not spool the run's end: %s", err)
            self._open = False
        sender.send_now(EXIT_SECONDS)
        with self._lock:
            spool.refresh()
            spool.let_go()
            left = spool.pending()
            if not left:
                spool.remove()
                sender.use(None)
        if left:
            self._report_undelivered(spool, left)

    def last_step(self) -> int:
        """The highest step logged to this writer's run before this fit, or still waiting in a
        spool; -1 for a new run. Resumed training starts after it, so no step is logged twice."""
        if self._resume_step is not None:  # asked again within one fit: what was there before it
            return self._resume_step
        try:
            spool = self._ensure_open()
        except SpoolWriteError:
            spool = None
        record = self._sender.record or {}
        run_id = (spool.run if spool is not None else record).get("run_id")
        fresh = record.get("owns_run", True)  # a run this writer creates holds nothing yet
        logged = -1 if fresh or not run_id else logged_last_step(record["tracking_uri"], run_id)
        waiting = spooled_last_step(self.spool_dir, run_id, spool)
        self._resume_step = max(logged, waiting, self._last_written)
        return self._resume_step

    # Messages ----------------------------------------------------------------------------------
    def _report_undelivered(self, spool: Spool, left: list[dict[str, Any]]) -> None:
        where = spool.directory.resolve()
        self._notices.warn(
            f"undelivered {where}",
            "vizcallbacks: %d items (%s) could not be delivered to MLflow at %s; they are kept "
            "in %s. Send them when the server is back with: python -m vizcallbacks sync %s",
            len(left),
            describe_items(left),
            spool.run["tracking_uri"],
            where,
            where,
        )

    def _announce(self, record: Mapping[str, Any], waited: float | None) -> None:
        run_id = record.get("run_id")
        if not run_id or not self._notices.first("announced"):
            return
        uri = str(record["tracking_uri"])
        if is_remote(uri):
            where = f"{uri.rstrip('/')}/#/experiments/{record.get('experiment_id')}/runs/{run_id}"
        else:
            where = f"`mlflow ui --backend-store-uri {uri}`"
        took = "" if waited is None else f" (all delivered {waited:.1f} s after training)"
        say(f"vizcallbacks: MLflow run {run_id}: {where}{took}")
