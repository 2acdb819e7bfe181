"""Replaying a spool: ``python -m vizcallbacks sync DIR`` sends what training could not deliver.

Each item is delivered once however often this runs: delivered ids are recorded in the spool,
and images an interrupted attempt already stored are recognised on the server. The spool is
checked first: a damaged item is skipped by name, a directory that is not a spool is refused.
A run the writer created and never ended (the process was killed) is ended as ``KILLED``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vizcallbacks.mlflow_store.server import import_mlflow, require_server, short_error
from vizcallbacks.mlflow_store.tracking_uri import (
    absolute_tracking_uri,
    check_tracking_uri,
    client_for,
)
from vizcallbacks.replay.payloads import payload_problem
from vizcallbacks.writers.mlflow.delivery import ROUND_ITEMS, deliver
from vizcallbacks.writers.mlflow.spool import Spool, SpoolWriteError
from vizcallbacks.writers.mlflow.spool_format import Damaged
from vizcallbacks.writers.mlflow.target import ensure_run, now_ms

__all__ = ["SpoolWriteError", "SyncResult", "sync_spool"]

log = logging.getLogger("vizcallbacks")


@dataclass(frozen=True)
class SyncResult:
    """What ``sync_spool`` did: items sent now, sent before, still left, damaged, and the end."""

    directory: Path
    tracking_uri: str
    run_id: str | None
    sent: int
    already_sent: int
    left: list[dict[str, Any]]
    errors: dict[str, int]
    damaged: list[Damaged] = field(default_factory=list)  # skipped: they can never be sent
    incomplete: Damaged | None = None  # a last line cut short by a crash (never completed)
    ended: str | None = None  # the status sync gave a run nobody ended, e.g. "KILLED"


def sync_spool(
    directory: str | Path, tracking_uri: str | None = None, wait: float = 60.0
) -> SyncResult:
    """Deliver what a spool holds to its MLflow run, each item once; running it again is harmless.

    ``tracking_uri`` replaces the recorded server (it moved, or the run was never created).
    ``wait`` is how long to wait for a training process still delivering the same spool.
    """
    import_mlflow()
    spool = Spool.open(directory)  # refuses a directory that is not ours, writes nothing
    uri = absolute_tracking_uri(tracking_uri) if tracking_uri else str(spool.run["tracking_uri"])
    check_tracking_uri(uri, create=True)
    require_server(uri, "pass --tracking-uri with the server to send to.")
    client = client_for(uri)
    with spool.lock(timeout=wait) as acquired:
        if not acquired:
            raise TimeoutError(
                f"Another process (the training run?) kept {directory} locked for {wait:g} s while "
                "delivering it. Try again when it has finished, or pass a longer --wait."
            )
        spool.refresh()
        damaged = list(spool.damaged)
        pending = []
        for item in spool.pending():
            reason = payload_problem(spool, item) if "file" in item else None
            if reason is None:
                pending.append(item)
            else:
                damaged.append(Damaged(None, item["id"], _name(item), reason))
        record = spool.reload_run()
        alive = spool.writer_alive()  # its training process runs: it ends the run itself
        must_end = bool(record.get("owns_run")) and not spool.ended and not alive
        if alive:
            log.warning(
                "vizcallbacks: %s is still being filled by a running training process; what it "
                "holds now is sent, and that process ends its run itself.",
                directory,
            )
        if pending or (must_end and record.get("run_id")):
            _record_or_raise(spool.check_writable, directory, len(pending), "before sending")
        _move_to(client, spool, uri)
        already = spool.delivered_count()
        run_id = ensure_run(client, spool) if pending else spool.run.get("run_id")
        errors: Counter[str] = Counter()
        sent = 0
        for start in range(0, len(pending), ROUND_ITEMS * 2):
            batch = pending[start : start + ROUND_ITEMS * 2]
            report = deliver(client, str(run_id), spool, batch, recheck_images=True)
            _record_or_raise(spool.mark_delivered, directory, report.delivered, "midway")
            sent += len(report.delivered)
            errors.update({**report.failed, **report.rejected}.values())
            log.info("vizcallbacks: sent %d of %d items", sent, len(pending))
        bad = {d.item_id for d in damaged}
        left = [item for item in spool.pending() if item["id"] not in bad]
        ended = None
        if must_end and run_id and not left:
            ended = _end_abandoned_run(client, str(run_id), spool)
    return SyncResult(
        Path(directory), uri, run_id, sent, already, left, dict(errors), damaged,
        spool.incomplete, ended,
    )  # fmt: skip


def _name(item: dict[str, Any]) -> str | None:
    key = item.get("key", item.get("artifact_path"))
    return str(key) if key is not None else None


def _record_or_raise(write: Any, directory: str | Path, arg: Any, when: str) -> None:
    """Call ``write(arg)`` on the spool; turn an ``OSError`` into one :class:`SpoolWriteError`."""
    try:
        write(arg)
    except OSError as err:
        raise SpoolWriteError(
            f"cannot write to the spool {directory} ({when}: {err.strerror or err}). Nothing "
            "is lost: free some space (or make it writable) and run the same command again."
        ) from err


def _end_abandoned_run(client: Any, run_id: str, spool: Spool) -> str | None:
    """End the writer's run as KILLED when its process never said how it ended; else None.

    Left alone if someone ended it already. Its end time is the last the spool heard of it.
    """
    if client.get_run(run_id).info.status != "RUNNING":
        return None
    end_time = max(spool.last_heard, int(spool.run.get("start_time") or 0)) or now_ms()
    client.set_terminated(run_id, status="KILLED", end_time=end_time)
    return "KILLED"


def _move_to(client: Any, spool: Spool, uri: str) -> None:
    """Record ``uri`` as the spool's server, if its run (when created) is there."""
    record = spool.reload_run()
    if uri == record["tracking_uri"]:
        return
    if record.get("run_id"):
        try:
            client.get_run(record["run_id"])
        except Exception as err:
            raise ValueError(
                f"Run {record['run_id']} of this spool is not on {uri} ({short_error(err)}). "
                f"Send it to the server it was created on: {record['tracking_uri']}"
            ) from err
    spool.update_run(tracking_uri=uri)
