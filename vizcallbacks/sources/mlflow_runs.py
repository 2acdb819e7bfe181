"""Runs found in an MLflow store: the images ``log_image`` stored per key and step, and the
metric histories, for ``python -m vizcallbacks compare`` and the report's MLflow reader.

Works against a tracking server (``http://...``) and a local store (``sqlite:///mlflow.db``).
Everything that can go wrong because of what the user typed (a run, key or step that is not
there, a store that does not exist) raises :class:`RunLookupError` with what is available.
"""

from __future__ import annotations

import difflib
import io
import tempfile
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vizcallbacks.mlflow_store.image_files import logged_images
from vizcallbacks.mlflow_store.server import import_mlflow, require_server, short_error
from vizcallbacks.mlflow_store.tracking_uri import (
    absolute_tracking_uri,
    check_tracking_uri,
    client_for,
)

__all__ = [
    "LoggedRun",
    "RunLookupError",
    "connect",
    "listing",
    "metric_history",
    "open_run",
    "printable",
    "steps_text",
]

_SHOWN = 12  # how many available keys / runs an error message lists


class RunLookupError(LookupError):
    """A run, image key or step that is not in the store; the message says what is there."""


def listing(values: Sequence[Any], limit: int = _SHOWN) -> str:
    """The first ``limit`` values joined by commas, and how many more there are."""
    shown = ", ".join(str(v) for v in values[:limit])
    more = len(values) - limit
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def _key_listing(keys: Collection[str]) -> str:
    """Keys with the same parent folded, ``activations/conv1/* (11 keys)``, so layers show."""
    children: dict[str, list[str]] = defaultdict(list)
    for key in sorted(keys):
        children[key.rpartition("/")[0]].append(key)
    folded: list[str] = []
    for parent, group in children.items():
        if parent and len(group) > 2:
            folded.append(f"{parent}/* ({len(group)} keys)")
        else:
            folded.extend(group)
    return listing(sorted(folded), limit=20)


def steps_text(steps: Sequence[int]) -> str:
    """``0..5`` for a contiguous range, else the list."""
    if len(steps) > 2 and list(steps) == list(range(steps[0], steps[-1] + 1)):
        return f"{steps[0]}..{steps[-1]}"
    return listing(steps)


def connect(tracking_uri: str | None = None) -> Any:
    """An ``MlflowClient`` for ``tracking_uri`` (default: MLflow's own, ``$MLFLOW_TRACKING_URI``).

    A local SQLite store that does not exist and a server that does not answer are reported here,
    rather than MLflow creating an empty database or retrying for minutes.
    """
    mlflow = import_mlflow()
    uri = absolute_tracking_uri(tracking_uri or mlflow.get_tracking_uri())
    check_tracking_uri(uri)  # a missing store, a file that is not one, an unknown scheme
    require_server(uri, "pass --tracking-uri with the server or store the runs were logged to.")
    return client_for(uri)


def printable(text: str) -> str:
    """``text`` with control characters shown escaped (``\\x1b``), safe to print to a terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _recent_runs(client: Any, limit: int = 5) -> list[str]:
    try:
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(
            experiments, max_results=limit, order_by=["attributes.start_time DESC"]
        )
    except Exception:
        return []
    return [f"{r.info.run_id} ({printable(r.info.run_name or '')})" for r in runs]


@dataclass
class LoggedRun:
    """One MLflow run: its images by key and step, its metrics, and how to fetch them."""

    client: Any
    run_id: str
    name: str
    metrics: frozenset[str]
    images: dict[str, dict[int, str]]  # key -> step -> artifact path (the latest per step)

    @property
    def label(self) -> str:
        """``name (1a2b3c4d)``: how the picture and the messages name the run."""
        name = printable(self.name)
        return f"{name} ({self.run_id[:8]})" if name else self.run_id[:8]

    def steps(self, key: str) -> list[int]:
        """The steps at which ``key`` has an image; raise naming the available keys if none."""
        if key in self.images:
            return sorted(self.images[key])
        below = sorted(k for k in self.images if k.startswith(key.rstrip("/") + "/"))
        if below:
            hint = f"It has images under {key}/ (one per probe): {listing(below)}"
        else:
            close = difflib.get_close_matches(key, list(self.images), n=3, cutoff=0.6)
            hint = f"Did you mean {', '.join(close)}? " if close else ""
            hint += f"Its image keys: {_key_listing(self.images) or 'none'}"
        raise RunLookupError(
            f"Run {self.label} has no image {key!r}. {hint}. Pass one of them with --key."
        )

    def image(self, key: str, step: int) -> np.ndarray:
        """The uint8 RGB image logged under ``key`` at ``step``."""
        steps = self.steps(key)
        if step not in self.images[key]:
            raise RunLookupError(
                f"Run {self.label} has no {key!r} image at step {step}; its steps are "
                f"{steps_text(steps)}. Pass one of them with --step."
            )
        from PIL import Image

        with tempfile.TemporaryDirectory(prefix="vizcallbacks-compare-") as tmp:
            local = self.client.download_artifacts(self.run_id, self.images[key][step], tmp)
            data = Path(local).read_bytes()
        with Image.open(io.BytesIO(data)) as picture:
            return np.asarray(picture.convert("RGB"), dtype=np.uint8).copy()

    def metric(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of metric ``key``, one value per step; empty if never logged."""
        return metric_history(self.client, self.run_id, key)


def metric_history(client: Any, run_id: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of ``key`` in ``run_id`` sorted by step, the latest value per step."""
    latest: dict[int, tuple[int, float]] = {}
    for m in client.get_metric_history(run_id, key):
        if m.step not in latest or m.timestamp >= latest[m.step][0]:
            latest[m.step] = (m.timestamp, m.value)
    steps = sorted(latest)
    return np.array(steps, dtype=np.int64), np.array(
        [latest[s][1] for s in steps], dtype=np.float64
    )


def _find_run(client: Any, run: str) -> Any:
    """The run whose id is ``run``, else the only run named ``run``."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run)
    except MlflowException as err:
        if err.get_http_status_code() >= 500:
            raise ConnectionError(f"MLflow could not read run {run}: {short_error(err)}") from err
    named = []
    if "'" not in run:
        try:
            experiments = [e.experiment_id for e in client.search_experiments()]
            named = client.search_runs(
                experiments, filter_string=f"attributes.run_name = '{run}'", max_results=10
            )
        except MlflowException:
            named = []
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        ids = [f"{r.info.run_id} (started {r.info.start_time})" for r in named]
        raise RunLookupError(
            f"{len(named)} runs are named {printable(repr(run))}: {listing(ids)}. "
            "Pass a run id instead."
        )
    recent = _recent_runs(client)
    where = getattr(client, "tracking_uri", "the store")
    hint = f" Latest runs there: {'; '.join(recent)}." if recent else " It holds no runs."
    raise RunLookupError(
        f"No run with id or name {printable(repr(run))} in {where}.{hint} Pass a run id from "
        "the run page (or "
        "`mlflow runs list --experiment-id ID`), and --tracking-uri if the run is in another store."
    )


def open_run(client: Any, run: str) -> LoggedRun:
    """Find ``run`` (an id, or a unique run name) and list its images and metrics."""
    found = _find_run(client, run)
    run_id = found.info.run_id
    images: dict[str, dict[int, str]] = defaultdict(dict)
    stamps: dict[tuple[str, int], int] = {}
    for key, step, stamp, path in logged_images(client, run_id):
        if stamp >= stamps.get((key, step), -1):  # a replayed duplicate: keep the latest
            stamps[key, step] = stamp
            images[key][step] = path
    return LoggedRun(
        client=client,
        run_id=run_id,
        name=found.info.run_name or "",
        metrics=frozenset(found.data.metrics),
        images=dict(images),
    )
