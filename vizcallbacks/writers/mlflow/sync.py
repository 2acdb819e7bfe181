"""Replaying a spool: ``python -m vizcallbacks sync DIR`` sends what training could not deliver.

Each item is delivered once however often this runs: delivered ids are recorded in the spool,
and images an interrupted attempt already stored are recognised on the server.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vizcallbacks.writers.mlflow.delivery import ROUND_ITEMS, deliver
from vizcallbacks.writers.mlflow.server import import_mlflow, require_server, short_error
from vizcallbacks.writers.mlflow.spool import Spool
from vizcallbacks.writers.mlflow.target import absolute_tracking_uri, ensure_run

__all__ = ["SyncResult", "sync_spool"]

log = logging.getLogger("vizcallbacks")


@dataclass(frozen=True)
class SyncResult:
    """What ``sync_spool`` did: items sent now, items sent before, items still left."""

    directory: Path
    tracking_uri: str
    run_id: str | None
    sent: int
    already_sent: int
    left: list[dict[str, Any]]
    errors: dict[str, int]


def sync_spool(
    directory: str | Path, tracking_uri: str | None = None, wait: float = 60.0
) -> SyncResult:
    """Deliver what a spool holds to its MLflow run, each item once; running it again is harmless.

    ``tracking_uri`` replaces the recorded server (it moved, or the run was never created).
    ``wait`` is how long to wait for a training process still delivering the same spool.
    """
    mlflow = import_mlflow()
    spool = Spool.open(directory)
    uri = absolute_tracking_uri(tracking_uri) if tracking_uri else str(spool.run["tracking_uri"])
    require_server(uri, "pass --tracking-uri with the server to send to.")
    client = mlflow.MlflowClient(uri)
    with spool.lock(timeout=wait) as acquired:
        if not acquired:
            raise TimeoutError(
                f"Another process (the training run?) kept {directory} locked for {wait:g} s while "
                "delivering it. Try again when it has finished, or pass a longer --wait."
            )
        spool.refresh()
        _move_to(client, spool, uri)
        already = spool.delivered_count()
        pending = spool.pending()
        run_id = ensure_run(client, spool) if pending else spool.run.get("run_id")
        errors: Counter[str] = Counter()
        sent = 0
        for start in range(0, len(pending), ROUND_ITEMS * 2):
            batch = pending[start : start + ROUND_ITEMS * 2]
            report = deliver(client, str(run_id), spool, batch, recheck_images=True)
            spool.mark_delivered(report.delivered)
            sent += len(report.delivered)
            errors.update({**report.failed, **report.rejected}.values())
            log.info("vizcallbacks: sent %d of %d items", sent, len(pending))
        left = spool.pending()
    return SyncResult(Path(directory), uri, run_id, sent, already, left, dict(errors))


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
