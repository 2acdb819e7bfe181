"""MLflow writer: images with a step slider, metric charts, run options, and nothing lost.

Everything written goes first to a spool on local disk (``vizcallbacks/writers/spool.py``) and is
sent by a background sender thread; the callbacks never wait for the network. While the tracking
server does not answer, items wait in the spool and are retried; what is still there at the end
is named in one warning with the command that replays it, ``python -m vizcallbacks sync DIR``.
Replaying is idempotent: delivered ids are recorded, metrics carry their original timestamps (the
server ignores an identical metric logged twice), images already on the server are recognised by
key, step and timestamp, and tags and files are simply written again.

Histograms: MLflow has no histogram type, so ``write_histogram`` logs the distribution's
min / 25th / 50th / 75th percentile / max as metrics (``channel_means_p50/<layer>``...), which
the run page charts over epochs and compares across runs, plus the raw values of each step in one
JSON file, ``histograms/step_000003.json`` (rewritten as a step's layers arrive; the sender skips
versions a newer one replaces, so it is about one upload per step, not one per layer).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import posixpath
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from vizcallbacks.tags import safe_name, tag
from vizcallbacks.writers.base import check_log_dir, print_msg
from vizcallbacks.writers.spool import Spool, describe_items

__all__ = ["MLflowWriter", "SyncResult", "sync_spool"]

log = logging.getLogger("vizcallbacks")

_INSTALL_HINT = "pip install 'vizcallbacks[mlflow]'"
_KEY = re.compile(r"^[A-Za-z0-9_\-./ ]+$")  # what MLflow accepts in metric, param and image keys
_IMAGE_FILE = re.compile(
    r"^(?P<key>.+?)[+%]step[+%](?P<step>-?\d+)[+%]timestamp[+%](?P<ts>\d+)[+%][^+%]+\.png$"
)
_QUANTILES = {"min": 0.0, "p25": 0.25, "p50": 0.5, "p75": 0.75, "max": 1.0}
_SPOOL_TAG = "vizcallbacks.spool_id"
_VERSION_TAG = "vizcallbacks.version"
_LOGGED_IMAGES_TAG = "mlflow.loggedImages"  # what log_image sets: the run page shows its images
_MAX_METRICS = 1000  # MLflow's per-request limits
_MAX_TAGS = 100
_MAX_TAG_VALUE = 8000
_ROUND_ITEMS = 256  # items per delivery round: the record of what was delivered grows as we go
_FILE_WORKERS = 4  # parallel image uploads
_PROBE_TIMEOUT = 3.0
_LINGER = 0.2  # let a step's items gather before a round
_HISTOGRAM_STEPS = 8  # recent steps whose histogram file is still being completed


def _import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError as err:
        raise ImportError(
            f"MLflowWriter needs MLflow, an optional extra of vizcallbacks: {_INSTALL_HINT}"
        ) from err
    return mlflow


def _now_ms() -> int:
    return int(time.time() * 1000)


def _check_key(key: str, what: str) -> str:
    if not isinstance(key, str) or not _KEY.match(key) or key.startswith("/") or ".." in key:
        raise ValueError(
            f"{what} {key!r} is not a valid MLflow key (letters, digits, _ - . / and space; no "
            "'..'). Build tags with vizcallbacks.tags.tag() and safe_name()."
        )
    return key


def absolute_tracking_uri(uri: str) -> str:
    """``uri`` with a local store's relative path made absolute, so ``sync`` works from anywhere."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" and uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if path and path != ":memory:" and not os.path.isabs(path):
            return "sqlite:///" + os.path.abspath(path)
        return uri
    if parsed.scheme == "file":
        return Path(parsed.path).resolve().as_uri()
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # a plain path
        return str(Path(uri).resolve())
    return uri


def _probe(uri: str, timeout: float = _PROBE_TIMEOUT) -> str | None:
    """None when the tracking server answers (or is not an HTTP server), else why not.

    One request to ``/health`` without MLflow's retries, which with a dead server take minutes.
    """
    if urlparse(uri).scheme not in ("http", "https"):
        return None
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(
            get_default_host_creds(uri),
            "/health",
            "GET",
            max_retries=0,
            backoff_factor=0,
            backoff_jitter=0,
            timeout=timeout,
            raise_on_status=False,
        )
    except Exception as err:
        return _short(err)
    if response.status_code >= 500:
        return f"HTTP {response.status_code} from {uri}/health"
    return None


def _short(err: BaseException) -> str:
    text = str(err)
    for marker in ("Connection refused", "timed out", "Name or service not known"):
        if marker in text:
            return marker
    return f"{type(err).__name__}: {text[:200]}"


def _is_rejection(err: BaseException) -> bool:
    """True when the backend refused the item itself (HTTP 4xx): sending it again cannot help."""
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException):
        status = err.get_http_status_code()
        return 400 <= status < 500 and status not in (408, 429)
    return isinstance(err, (ValueError, TypeError, FileNotFoundError))


# Delivery: shared by the writer's sender thread and by `python -m vizcallbacks sync` ----------
@dataclass
class _Report:
    delivered: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)  # transient: try again later
    rejected: dict[int, str] = field(default_factory=dict)  # refused: retrying will not help

    def fail(self, ids: Collection[int], err: BaseException) -> None:
        target = self.rejected if _is_rejection(err) else self.failed
        for i in ids:
            self.delivered.discard(i)
            target[i] = _short(err)


def _images_on_server(client: Any, run_id: str) -> set[tuple[str, int, int]]:
    """(key, step, timestamp) of every image ``log_image`` stored in the run."""
    found = set()
    for info in client.list_artifacts(run_id, "images"):
        match = _IMAGE_FILE.match(posixpath.basename(info.path))
        if match:
            key = match["key"].replace("~", "/").replace("#", "/")
            found.add((key, int(match["step"]), int(match["ts"])))
    return found


def _send_file(client: Any, run_id: str, spool: Spool, item: Mapping[str, Any]) -> None:
    path = spool.payload(item)
    if not path.is_file():
        raise FileNotFoundError(f"the spooled file {path} is missing")
    if item["kind"] == "image":
        from PIL import Image

        with Image.open(path) as picture:
            picture.load()
            client.log_image(
                run_id,
                picture,
                key=item["key"],
                step=item["step"],
                timestamp=item["timestamp"],
                synchronous=True,  # we need to know it arrived; this runs off the training thread
            )
    else:
        client.log_artifact(run_id, str(path), item["artifact_path"])


def _operation_error(ops: Any, err: BaseException) -> BaseException:
    """The first real error behind MLflow's combined async-logging failure, for classifying it."""
    for future in getattr(ops, "_operation_futures", []):
        inner = future.exception()
        if inner is not None:
            return inner
    return err


def _deliver(
    client: Any,
    run_id: str,
    spool: Spool,
    items: list[dict[str, Any]],
    recheck_images: bool | Collection[int] = (),
) -> _Report:
    """Send ``items`` to ``run_id``; report which arrived, which may be retried, which were refused.

    Metrics go through MLflow's asynchronous batch logging while images upload in parallel;
    a run status item is applied only after everything before it arrived.
    """
    from mlflow.entities import Metric, RunTag

    report = _Report()
    ends = [it for it in items if it["kind"] == "end"]
    files = [it for it in items if it["kind"] in ("image", "artifact")]

    # Images an earlier, interrupted attempt may already have stored: do not send them twice.
    recheck = set() if isinstance(recheck_images, bool) else set(recheck_images)
    check = [
        it
        for it in files
        if it["kind"] == "image" and (recheck_images is True or it["id"] in recheck)
    ]
    if check:
        try:
            present = _images_on_server(client, run_id)
        except Exception as err:
            report.fail([it["id"] for it in items], err)
            return report
        report.delivered |= {
            it["id"] for it in check if (it["key"], it["step"], it["timestamp"]) in present
        }

    # Metrics: asynchronous batches, waited for at the end.
    metric_jobs: list[tuple[set[int], Any]] = []
    chunk: list[Metric] = []
    chunk_ids: set[int] = set()

    def submit_metrics() -> None:
        if not chunk:
            return
        try:
            ops = client.log_batch(run_id, metrics=list(chunk), synchronous=False)
            metric_jobs.append((set(chunk_ids), ops))
        except Exception as err:
            report.fail(chunk_ids, err)
        chunk.clear()
        chunk_ids.clear()

    for item in items:
        if item["kind"] != "metrics":
            continue
        report.delivered.add(item["id"])
        for key, value in item["values"].items():
            chunk.append(Metric(key, float(value), item["timestamp"], item["step"]))
            chunk_ids.add(item["id"])
            if len(chunk) >= _MAX_METRICS:
                submit_metrics()
    submit_metrics()

    # Tags: small synchronous batches (a refused tag must not sink the metrics).
    entries = [
        (it["id"], k, v) for it in items if it["kind"] == "tags" for k, v in it["values"].items()
    ]
    for start in range(0, len(entries), _MAX_TAGS):
        part = entries[start : start + _MAX_TAGS]
        ids = {i for i, _, _ in part}
        try:
            client.log_batch(run_id, tags=[RunTag(k, v) for _, k, v in part])
            report.delivered |= ids - set(report.failed) - set(report.rejected)
        except Exception as err:
            report.fail(ids, err)

    # Images and files, in parallel; a file rewritten later in this batch is sent only once.
    latest = {(it.get("artifact_path"), it["file"]): it["id"] for it in files}
    for it in files:
        if it["kind"] == "artifact" and latest[(it["artifact_path"], it["file"])] != it["id"]:
            report.delivered.add(it["id"])
    to_send = [it for it in files if it["id"] not in report.delivered]
    if any(it["kind"] == "image" for it in to_send):
        try:  # log_image sets this tag too: concurrent first inserts of it collide in SQL stores
            client.set_tag(run_id, _LOGGED_IMAGES_TAG, "True")
        except Exception as err:
            report.fail([it["id"] for it in to_send], err)
            to_send = []
    if to_send:
        remote = urlparse(str(client.tracking_uri)).scheme in ("http", "https")
        workers = _FILE_WORKERS if remote else 1  # a local store gains nothing from threads
        with ThreadPoolExecutor(workers, thread_name_prefix="vizcallbacks-mlflow") as pool:
            futures = [
                (it["id"], pool.submit(_send_file, client, run_id, spool, it)) for it in to_send
            ]
            for item_id, future in futures:
                try:
                    future.result()
                    report.delivered.add(item_id)
                except Exception as err:
                    report.fail([item_id], err)
        # An image whose upload arrived but whose follow-up call failed is there: keep it once.
        unsure = [
            it for it in to_send if it["kind"] == "image" and it["id"] not in report.delivered
        ]
        if unsure:
            with contextlib.suppress(Exception):
                present = _images_on_server(client, run_id)
                for it in unsure:
                    if (it["key"], it["step"], it["timestamp"]) in present:
                        report.failed.pop(it["id"], None)
                        report.rejected.pop(it["id"], None)
                        report.delivered.add(it["id"])

    for ids, ops in metric_jobs:
        try:
            if ops is not None:
                ops.wait()
        except Exception as err:
            report.fail(ids, _operation_error(ops, err))

    for item in ends:
        if report.failed:  # the run ends once everything before it is there
            report.failed[item["id"]] = "waiting for earlier items"
            continue
        try:
            client.set_terminated(run_id, status=item["status"], end_time=item["end_time"])
            report.delivered.add(item["id"])
        except Exception as err:
            report.fail([item["id"]], err)
    return report


def _experiment_id(client: Any, name: str | None) -> str:
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


def _ensure_run(client: Any, spool: Spool) -> str:
    """The spool's run id, creating the run on first contact (found again by its spool tag)."""
    record = spool.reload_run()
    if record.get("run_id"):
        return str(record["run_id"])
    experiment_id = record.get("experiment_id") or _experiment_id(
        client, record.get("experiment_name")
    )
    existing = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{_SPOOL_TAG}` = '{record['spool_id']}'",
        max_results=1,
    )
    if existing:
        run_id = existing[0].info.run_id
    else:
        run_id = client.create_run(
            experiment_id,
            start_time=record.get("start_time"),
            tags={_SPOOL_TAG: record["spool_id"], _VERSION_TAG: record.get("version", "")},
            run_name=record.get("run_name"),
        ).info.run_id
    spool.update_run(run_id=run_id, experiment_id=str(experiment_id))
    return str(run_id)


# The writer ------------------------------------------------------------------------------------
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
    ) -> None:
        _import_mlflow()  # fail at construction, with the install hint, not at train end
        for name, value in (
            ("tracking_uri", tracking_uri),
            ("experiment_name", experiment_name),
            ("run_id", run_id),
            ("run_name", run_name),
        ):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise TypeError(f"{name} must be a non-empty string or None. Received: {value!r}")
        if not isinstance(spool_dir, (str, os.PathLike)):
            raise TypeError(f"spool_dir must be a path. Received: spool_dir={spool_dir!r}")
        if on_unreachable not in ("spool", "raise"):
            raise ValueError(
                "on_unreachable must be 'spool' (train anyway, send later) or 'raise' (stop "
                f"before training). Received: on_unreachable={on_unreachable!r}"
            )
        for name, number in (("close_timeout", close_timeout), ("retry_interval", retry_interval)):
            if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
                raise ValueError(f"{name} must be a number of seconds ≥ 0. Received: {number!r}")
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_id = run_id
        self.run_name = run_name
        self.spool_dir = Path(spool_dir)
        self.on_unreachable = on_unreachable
        self.close_timeout = float(close_timeout)
        self.retry_interval = float(retry_interval)

        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._settled = threading.Condition(self._lock)  # notified after every delivery round
        self._record: dict[str, Any] | None = None  # where to log, once resolved
        self._spool: Spool | None = None
        self._open = False
        self._closing = False
        self._sender: threading.Thread | None = None
        self._in_round = False
        self._down = False
        self._attempted: set[int] = set()  # failed once: check the server before resending
        self._rejected: dict[int, str] = {}
        self._histograms: dict[int, dict[str, list[float | None]]] = {}  # recent steps
        self._histograms_changed: set[int] = set()
        self._params: dict[str, str] = {}
        self._told: set[str] = set()
        self._client: Any = None
        self._close_deadline = 0.0

    @property
    def logged_run_id(self) -> str | None:
        """The run this writer logs to; None before training, or until a server that was down
        has created it."""
        with self._lock:
            record = self._spool.run if self._spool is not None else self._record
            return None if record is None else record.get("run_id")

    # Opening -----------------------------------------------------------------------------------
    def check(self) -> None:
        """Before training: check ``spool_dir``, reach the server, find or create the run.

        A server that does not answer is reported here, then training goes on or stops as
        ``on_unreachable`` says. Called by the callbacks on the training thread, where
        ``mlflow.active_run()`` is visible.
        """
        self._ensure_open()

    def _ensure_open(self) -> Spool:
        with self._lock:
            first = self._record is None
            if self._record is None:
                self._record = self._resolve()
            if self._spool is None:
                directory = self.spool_dir / self._record["directory"]
                self._spool = (
                    Spool.open(directory)
                    if (directory / "run.json").is_file()
                    else Spool.create(directory, self._record)
                )
                self._attempted.clear()  # ids restart in a new spool
                self._rejected.clear()
                if first and not self._record["owns_run"]:
                    version = {_VERSION_TAG: self._record["version"]}
                    self._spool.append("tags", {"values": version})
            if not self._open:
                self._open = True
                self._closing = False
                if self._sender is None:
                    self._sender = threading.Thread(
                        target=self._send_loop, name="vizcallbacks-mlflow-sender", daemon=True
                    )
                    self._sender.start()
            return self._spool

    def _resolve(self) -> dict[str, Any]:
        """Decide where to log (MLflow's rules), reach the server, and create the spool."""
        mlflow = _import_mlflow()
        from vizcallbacks import __version__

        check_log_dir(self.spool_dir, "MLflowWriter(spool_dir=...)")
        global_uri = absolute_tracking_uri(mlflow.get_tracking_uri())
        uri = absolute_tracking_uri(self.tracking_uri) if self.tracking_uri else global_uri
        record: dict[str, Any] = {
            "tracking_uri": uri,
            "spool_id": uuid.uuid4().hex[:12],
            "version": __version__,
            "start_time": _now_ms(),
            "run_name": self.run_name,
            "experiment_name": self.experiment_name,
            "experiment_id": None,
            "run_id": self.run_id,
            "owns_run": self.run_id is None,
        }
        active = mlflow.active_run()
        if self.run_id is None and active is not None and uri == global_uri:
            record.update(run_id=active.info.run_id, owns_run=False)
            record["experiment_id"] = active.info.experiment_id
            if self.experiment_name:
                log.warning(
                    "vizcallbacks: MLflowWriter(experiment_name=%r) is ignored: logging to the "
                    "active run %s (experiment %s).",
                    self.experiment_name,
                    active.info.run_id,
                    active.info.experiment_id,
                )
        elif record["owns_run"] and not self.experiment_name:
            # MLflow's current experiment, without a network call (mlflow.set_experiment or env)
            from mlflow.tracking import fluent

            record["experiment_id"] = os.environ.get("MLFLOW_EXPERIMENT_ID") or getattr(
                fluent, "_active_experiment_id", None
            )
            if not record["experiment_id"]:
                record["experiment_name"] = os.environ.get("MLFLOW_EXPERIMENT_NAME")

        client = mlflow.MlflowClient(uri)
        reason = _probe(uri)
        if reason is None:
            try:
                if record["run_id"] is None:
                    record["experiment_id"] = record["experiment_id"] or _experiment_id(
                        client, record["experiment_name"]
                    )
                    record["run_id"] = client.create_run(
                        record["experiment_id"],
                        start_time=record["start_time"],
                        tags={_SPOOL_TAG: record["spool_id"], _VERSION_TAG: __version__},
                        run_name=self.run_name,
                    ).info.run_id
                elif self.run_id is not None:
                    record["experiment_id"] = client.get_run(self.run_id).info.experiment_id
            except Exception as err:
                if _is_rejection(err):
                    raise ValueError(
                        f"MLflowWriter: MLflow at {uri} refused the run "
                        f"(run_id={self.run_id!r}, experiment_name={self.experiment_name!r}): "
                        f"{_short(err)}. Pass an existing run_id, or none to create a run."
                    ) from err
                reason = _short(err)
        record["directory"] = f"{record['run_id'] or 'unsent-run'}-{record['spool_id'][:8]}"
        where = self.spool_dir.resolve() / record["directory"]
        if reason is not None:
            if self.on_unreachable == "raise":
                raise ConnectionError(
                    f"MLflowWriter: the MLflow tracking server at {uri} does not answer "
                    f"({reason}). Start it or fix tracking_uri= / MLFLOW_TRACKING_URI; or pass "
                    "on_unreachable='spool' to train anyway and send everything when it answers. "
                    "Received: on_unreachable='raise'"
                )
            self._down = True
            log.warning(
                "vizcallbacks: the MLflow tracking server at %s does not answer (%s). Training "
                "goes on; everything is kept in %s and sent when the server answers (pass "
                "MLflowWriter(on_unreachable='raise') to stop instead).",
                uri,
                reason,
                where,
            )
        else:
            log.info("vizcallbacks: logging to MLflow run %s at %s", record["run_id"], uri)
        return record

    # Writer protocol ---------------------------------------------------------------------------
    def _append(
        self, kind: str, fields: Mapping[str, Any], payload: tuple[str, bytes] | None = None
    ) -> None:
        self._ensure_open().append(kind, fields, payload)
        self._wake.set()

    def write_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """One uint8 ``(H, W, C)`` image under ``tag`` at ``step``: the run page's image slider."""
        _check_key(tag, "Image tag")
        self._append(
            "image",
            {"key": tag, "step": int(step), "timestamp": _now_ms()},
            ("image.png", _encode_png(image)),
        )

    def write_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Metrics at ``step``; each key becomes a chart comparable across runs."""
        metrics = {_check_key(k, "Scalar tag"): float(v) for k, v in values.items()}
        if metrics:
            self._append("metrics", {"step": int(step), "timestamp": _now_ms(), "values": metrics})

    def write_histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        """Quantile metrics ``<kind>_p50/<layer>``... plus the values in the step's JSON file."""
        _check_key(tag, "Histogram tag")
        finite = np.asarray(values, dtype=np.float64).ravel()
        finite = finite[np.isfinite(finite)]
        kind, _, rest = tag.partition("/")
        if finite.size:
            levels = np.quantile(finite, list(_QUANTILES.values()))
            summary = {
                (tag_for(kind, stat, rest)): float(v)
                for stat, v in zip(_QUANTILES, levels, strict=True)
            }
            self.write_scalars(summary, step)
        with self._lock:  # callbacks publish on their own threads: merge a step's layers here
            self._histograms.setdefault(int(step), {})[tag] = [
                float(v) if np.isfinite(v) else None  # JSON has no NaN
                for v in np.asarray(values, dtype=np.float64).ravel()
            ]
            self._histograms_changed.add(int(step))
            for old in sorted(self._histograms)[:-_HISTOGRAM_STEPS]:
                del self._histograms[old]

    def write_text(self, tag: str, text: str, step: int) -> None:
        """Text as the file ``text/<tag>/step_000003.md`` in the run's artifacts."""
        _check_key(tag, "Text tag")
        self._append(
            "artifact",
            {"artifact_path": f"text/{tag}", "step": int(step)},
            (f"step_{int(step):06d}.md", str(text).encode("utf-8")),
        )

    def write_file(self, name: str, data: bytes) -> None:
        """``data`` as the run artifact ``files/<name>`` (an animation, say)."""
        _check_key(name, "File name")
        folder, _, base = name.rpartition("/")
        path = f"files/{folder}" if folder else "files"
        self._append("artifact", {"artifact_path": path}, (base, bytes(data)))

    def write_params(self, params: Mapping[str, Any]) -> None:
        """Run options as tags ``vizcallbacks.<name>``, each sent once (again if it changes).

        Tags, not parameters: the run page's image cards list every parameter above the image,
        and a dozen of them leave a sixth of the picture visible.
        """
        fresh: dict[str, str] = {}
        with self._lock:
            for name, value in params.items():
                key = _option_key(str(name))
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                if len(text) > _MAX_TAG_VALUE:
                    text = text[: _MAX_TAG_VALUE - 3] + "..."
                if self._params.get(key) != text:
                    self._params[key] = fresh[key] = text
        if fresh:
            self._append("tags", {"values": fresh})

    def flush(self) -> None:
        """Hand the step's histogram file to the sender and wake it; never waits for the network."""
        with self._lock:
            self._flush_histograms()
        self._wake.set()

    def _flush_histograms(self) -> None:
        """Spool each changed step's histogram file, whole: a later version replaces an earlier."""
        changed, self._histograms_changed = self._histograms_changed, set()
        for step in sorted(changed & set(self._histograms)):
            data = json.dumps({"step": step, "values": self._histograms[step]}).encode("utf-8")
            name = f"step_{step:06d}.json"
            self._append("artifact", {"artifact_path": "histograms", "step": step}, (name, data))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until everything written so far is delivered; False if ``timeout`` s passed first.

        Useful before reading the run back in the same process. Items MLflow refused do not
        count (they stay in the spool, reported at close).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._settled:
            while self._spool is not None and (self._in_round or self._deliverable()):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._settled.wait(timeout=0.5 if remaining is None else min(0.5, remaining))
                self._wake.set()
        return True

    def close(self) -> None:
        """End the run this writer started, wait for the server to take the rest, then report.

        Waits at most ``close_timeout`` seconds, and not at all while the server is down; what
        was not delivered is named in one warning with the ``sync`` command that replays it.
        Safe to call twice; writing after ``close()`` reopens the same run.
        """
        with self._lock:
            if not self._open or self._spool is None or self._record is None:
                return
            spool = self._spool
            self._flush_histograms()
            if self._record["owns_run"]:
                spool.append("end", {"status": "FINISHED", "end_time": _now_ms()})
            self._closing = True
            self._close_deadline = time.monotonic() + self.close_timeout
            sender = self._sender
        self._wake.set()
        if sender is not None:
            sender.join(timeout=self.close_timeout)
        with self._lock:
            self._open = False
            spool.refresh()
            left = spool.pending()
            record = self._record = spool.run
            if not left and self._sender is None:
                spool.remove()
                self._spool = None
        if left:
            self._report_undelivered(spool, left)
        self._announce(record)

    # Sender thread -----------------------------------------------------------------------------
    def _deliverable(self) -> list[dict[str, Any]]:
        spool = self._spool
        if spool is None:
            return []
        return [it for it in spool.pending() if it["id"] not in self._rejected]

    def _send_loop(self) -> None:
        delay: float | None = None
        while True:
            self._wake.wait(timeout=delay)
            self._wake.clear()
            if not self._closing:
                time.sleep(_LINGER)
            try:
                outcome = self._round()
            except Exception as err:  # never let the sender die silently
                self._tell_once("sender", "vizcallbacks: MLflow sender error (%s); retrying", err)
                outcome = "down"
            with self._lock:
                self._in_round = False
                self._settled.notify_all()
                if outcome == "sent":
                    delay = 0.0
                elif outcome in ("down", "busy", "retry"):
                    delay = min(self.retry_interval, max(0.5, 2 * (delay or 0.25)))
                else:
                    delay = None
                give_up = outcome != "retry" or time.monotonic() > self._close_deadline
                if self._closing and outcome != "sent" and give_up:
                    self._sender = None  # decided under the lock: a reopen starts a new sender
                    self._settled.notify_all()
                    return
            if outcome == "sent":
                self._wake.set()

    def _round(self) -> str:
        """One delivery attempt: ``"sent"``, ``"idle"`` (nothing to do), ``"down"`` (no answer),
        ``"retry"`` (the server answered but some items failed), ``"busy"`` (``sync`` has it)."""
        with self._lock:
            spool, record = self._spool, self._record
            if spool is None or record is None:
                return "idle"
            spool.refresh()
            if not self._deliverable():
                return "idle"
            self._in_round = True
        reason = _probe(record["tracking_uri"])
        if reason is not None:
            if not self._down:
                self._down = True
                self._tell_once(
                    "down",
                    "vizcallbacks: the MLflow tracking server at %s stopped answering (%s); "
                    "training goes on, items wait in %s and are retried.",
                    record["tracking_uri"],
                    reason,
                    spool.directory.resolve(),
                )
            return "down"
        if self._down:
            self._down = False
            log.info("vizcallbacks: MLflow at %s answers again; sending", record["tracking_uri"])
        with spool.lock(timeout=0) as acquired:
            if not acquired:
                return "busy"  # `python -m vizcallbacks sync` is delivering this spool
            spool.refresh()
            items = self._deliverable()[:_ROUND_ITEMS]
            if not items:
                return "idle"
            if self._client is None:  # one client: its store owns MLflow's async logging queue
                self._client = _import_mlflow().MlflowClient(record["tracking_uri"])
            client = self._client
            try:
                run_id = _ensure_run(client, spool)
            except Exception as err:
                log.debug("vizcallbacks: could not create the MLflow run yet: %s", err)
                return "down"
            report = _deliver(client, run_id, spool, items, recheck_images=self._attempted)
            spool.mark_delivered(report.delivered)
        self._attempted -= report.delivered
        self._attempted |= set(report.failed)
        for item_id, why in report.rejected.items():
            self._rejected[item_id] = why
            self._tell_once(
                f"rejected {why}",
                "vizcallbacks: MLflow refused an item (%s); it stays in %s.",
                why,
                spool.directory.resolve(),
            )
        return "retry" if report.failed else "sent"

    # Messages ----------------------------------------------------------------------------------
    def _tell_once(self, key: str, message: str, *args: Any) -> None:
        with self._lock:
            if key in self._told:
                return
            self._told.add(key)
        log.warning(message, *args)

    def _report_undelivered(self, spool: Spool, left: list[dict[str, Any]]) -> None:
        where = spool.directory.resolve()
        self._tell_once(
            f"undelivered {where}",
            "vizcallbacks: %d items (%s) could not be delivered to MLflow at %s; they are kept "
            "in %s. Send them when the server is back with: python -m vizcallbacks sync %s",
            len(left),
            describe_items(left),
            spool.run["tracking_uri"],
            where,
            where,
        )

    def _announce(self, record: Mapping[str, Any]) -> None:
        run_id = record.get("run_id")
        if not run_id or "announced" in self._told:
            return
        self._told.add("announced")
        uri = str(record["tracking_uri"])
        if urlparse(uri).scheme in ("http", "https"):
            where = f"{uri.rstrip('/')}/#/experiments/{record.get('experiment_id')}/runs/{run_id}"
        else:
            where = f"`mlflow ui --backend-store-uri {uri}`"
        print_msg(f"vizcallbacks: MLflow run {run_id}: {where}")


def tag_for(kind: str, stat: str, rest: str) -> str:
    """``channel_means_p50/<layer>``: a histogram's summary metric, grouped like other scalars."""
    return tag(f"{kind}_{stat}", rest) if rest else f"{kind}_{stat}"


def _option_key(name: str) -> str:
    """``vizcallbacks.<name>``, the run tag of one option (``vizcallbacks_version`` too)."""
    stem = name[len("vizcallbacks_") :] if name.startswith("vizcallbacks_") else name
    return f"vizcallbacks.{safe_name(stem)}"


def _encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` image."""
    from PIL import Image

    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(
            "image must be a uint8 array (H, W) or (H, W, C). "
            f"Received dtype {array.dtype}, shape {array.shape}"
        )
    if array.ndim == 3:
        if array.shape[-1] == 1:
            array = array[..., 0]
        elif array.shape[-1] not in (3, 4):
            raise ValueError(f"image must have 1, 3 or 4 channels. Received shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


# Replay ----------------------------------------------------------------------------------------
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
    mlflow = _import_mlflow()
    spool = Spool.open(directory)
    record = spool.run
    uri = absolute_tracking_uri(tracking_uri) if tracking_uri else str(record["tracking_uri"])
    reason = _probe(uri)
    if reason is not None:
        raise ConnectionError(
            f"The MLflow tracking server at {uri} does not answer ({reason}). Start it, or pass "
            "--tracking-uri with the server to send to."
        )
    client = mlflow.MlflowClient(uri)
    with spool.lock(timeout=wait) as acquired:
        if not acquired:
            raise TimeoutError(
                f"Another process (the training run?) kept {directory} locked for {wait:g} s while "
                "delivering it. Try again when it has finished, or pass a longer --wait."
            )
        spool.refresh()
        record = spool.reload_run()
        if uri != record["tracking_uri"]:
            if record.get("run_id"):
                try:
                    client.get_run(record["run_id"])
                except Exception as err:
                    raise ValueError(
                        f"Run {record['run_id']} of this spool is not on {uri} ({_short(err)}). "
                        f"Send it to the server it was created on: {record['tracking_uri']}"
                    ) from err
            spool.update_run(tracking_uri=uri)
        already = spool.delivered_count()
        pending = spool.pending()
        run_id = _ensure_run(client, spool) if pending else record.get("run_id")
        errors: Counter[str] = Counter()
        sent = 0
        for start in range(0, len(pending), _ROUND_ITEMS * 2):
            batch = pending[start : start + _ROUND_ITEMS * 2]
            report = _deliver(client, str(run_id), spool, batch, recheck_images=True)
            spool.mark_delivered(report.delivered)
            sent += len(report.delivered)
            errors.update({**report.failed, **report.rejected}.values())
            log.info("vizcallbacks: sent %d of %d items", sent, len(pending))
        left = spool.pending()
    return SyncResult(Path(directory), uri, run_id, sent, already, left, dict(errors))
