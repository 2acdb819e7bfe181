"""Where to log: the tracking URI made absolute, MLflow's environment and active run, the
experiment, and the run itself, created on first contact and found again by its spool tag.

The answer is a plain dict, the spool's ``run.json``, so a later ``sync`` knows it too.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from vizcallbacks._version import __version__
from vizcallbacks.mlflow_store.server import import_mlflow, is_rejection, probe, short_error
from vizcallbacks.mlflow_store.tracking_uri import absolute_tracking_uri
from vizcallbacks.tags import safe_name
from vizcallbacks.writers.mlflow.spool import Spool

__all__ = [
    "SPOOL_TAG",
    "VERSION_TAG",
    "check_run_id",
    "create_run",
    "ensure_run",
    "experiment_id",
    "now_ms",
    "plan_run",
    "reach_run",
    "spool_directory",
]

log = logging.getLogger("vizcallbacks")

SPOOL_TAG = "vizcallbacks.spool_id"
VERSION_TAG = "vizcallbacks.version"
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # MLflow's are 32 hex digits; be lenient


def check_run_id(run_id: str | None) -> None:
    """Raise ``ValueError`` naming ``run_id`` unless it could be an MLflow run id (it names a
    spool directory, so a path such as ``../x`` must never get that far)."""
    if run_id is not None and not _RUN_ID.match(run_id):
        raise ValueError(
            f"run_id={run_id!r} is not an MLflow run id (those are 32 hexadecimal digits, as "
            "shown on the run page); pass the id of an existing run, or none to create one."
        )


def spool_directory(spool_dir: Path, record: dict[str, Any]) -> Path:
    """``<spool_dir>/<run id>-<spool id>``, safe as a file name and always inside ``spool_dir``."""
    name = safe_name(f"{record.get('run_id') or 'unsent-run'}-{str(record['spool_id'])[:8]}")
    root = spool_dir.resolve()
    directory = (root / name).resolve()
    if directory.parent != root:
        raise ValueError(f"the spool of run {record.get('run_id')!r} would leave {root}")
    return directory


def now_ms() -> int:
    """Milliseconds since the epoch: MLflow's timestamps."""
    return int(time.time() * 1000)


def experiment_id(client: Any, name: str | None) -> str:
    """The id of experiment ``name`` (created if missing), or of ``Default`` without a name."""
    if not name:
        default = client.get_experiment_by_name("Default")
        return str(default.experiment_id) if default is not None else "0"
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:  # created meanwhile by someone else
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def create_run(client: Any, record: dict[str, Any]) -> str:
    """Create the run ``record`` describes, tagged with its spool id; return the run id."""
    run = client.create_run(
        record["experiment_id"],
        start_time=record.get("start_time"),
        tags={SPOOL_TAG: record["spool_id"], VERSION_TAG: record.get("version", "")},
        run_name=record.get("run_name"),
    )
    return str(run.info.run_id)


def ensure_run(client: Any, spool: Spool) -> str:
    """The spool's run id, creating the run on first contact (found again by its spool tag)."""
    record = spool.reload_run()
    if record.get("run_id"):
        return str(record["run_id"])
    record["experiment_id"] = record.get("experiment_id") or experiment_id(
        client, record.get("experiment_name")
    )
    existing = client.search_runs(
        [record["experiment_id"]],
        filter_string=f"tags.`{SPOOL_TAG}` = '{record['spool_id']}'",
        max_results=1,
    )
    run_id = str(existing[0].info.run_id) if existing else create_run(client, record)
    spool.update_run(run_id=run_id, experiment_id=str(record["experiment_id"]))
    return run_id


def plan_run(
    tracking_uri: str | None,
    experiment_name: str | None,
    run_id: str | None,
    run_name: str | None,
) -> dict[str, Any]:
    """Decide where to log by MLflow's rules, without a network call: the spool's record.

    An explicit ``run_id`` wins, then the active run (left open), else a new run in
    ``experiment_name`` or MLflow's current experiment (``set_experiment`` or environment).
    """
    mlflow = import_mlflow()
    global_uri = absolute_tracking_uri(mlflow.get_tracking_uri())
    uri = absolute_tracking_uri(tracking_uri) if tracking_uri else global_uri
    record: dict[str, Any] = {
        "tracking_uri": uri,
        "spool_id": uuid.uuid4().hex[:12],
        "version": __version__,
        "start_time": now_ms(),
        "run_name": run_name,
        "experiment_name": experiment_name,
        "experiment_id": None,
        "run_id": run_id,
        "owns_run": run_id is None,
    }
    active = mlflow.active_run()
    if run_id is None and active is not None and uri == global_uri:
        record.update(run_id=active.info.run_id, owns_run=False)
        record["experiment_id"] = active.info.experiment_id
        if experiment_name:
            log.warning(
                "vizcallbacks: MLflowWriter(experiment_name=%r) is ignored: logging to the "
                "active run %s (experiment %s).",
                experiment_name,
                active.info.run_id,
                active.info.experiment_id,
            )
    elif record["owns_run"] and not experiment_name:
        from mlflow.tracking import fluent

        record["experiment_id"] = os.environ.get("MLFLOW_EXPERIMENT_ID") or getattr(
            fluent, "_active_experiment_id", None
        )
        if not record["experiment_id"]:
            record["experiment_name"] = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    return record


def reach_run(record: dict[str, Any], given_run_id: str | None) -> str | None:
    """Create the planned run (or look up ``given_run_id``'s experiment) on the server.

    Fills ``record`` in place; returns None on success, else why the server could not be
    reached. A run or experiment the server refuses raises ``ValueError``.
    """
    uri = record["tracking_uri"]
    reason = probe(uri)
    if reason is not None:
        return reason
    client = import_mlflow().MlflowClient(uri)
    try:
        if record["run_id"] is None:
            record["experiment_id"] = record["experiment_id"] or experiment_id(
                client, record["experiment_name"]
            )
            record["run_id"] = create_run(client, record)
        elif given_run_id is not None:
            record["experiment_id"] = client.get_run(given_run_id).info.experiment_id
    except Exception as err:
        if is_rejection(err):
            raise ValueError(
                f"MLflowWriter: MLflow at {uri} refused the run (run_id={given_run_id!r}, "
                f"experiment_name={record['experiment_name']!r}): {short_error(err)}. "
                "Pass an existing run_id, or none to create a run."
            ) from err
        return short_error(err)
    return None
