"""Delivering a batch of spooled items to one run, one small function per kind of item.

Shared by the writer's sender thread and by ``python -m vizcallbacks sync``. Each function adds
the ids it sent to a :class:`Report`, or the error that kept them back: transient (try again
later) or a rejection (sending again cannot help). A refused batch is split until only what
MLflow refuses is left out, named in ``Report.refused``; refused items are settled in the spool
(never retried, never keeping a run or a ``sync`` from finishing).
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vizcallbacks.mlflow_store.image_files import images_on_server
from vizcallbacks.mlflow_store.server import (
    is_rejection,
    is_remote,
    local_artifact_dir,
    short_error,
)
from vizcallbacks.writers.mlflow.images import FILE_WORKERS, send_images
from vizcallbacks.writers.mlflow.spool import Spool

__all__ = ["ROUND_ITEMS", "Report", "deliver"]

ROUND_ITEMS = 256  # items per delivery round: the record of what was delivered grows as we go
MAX_METRICS = 1000  # MLflow's per-request limits
MAX_TAGS = 100
Item = dict[str, Any]


@dataclass
class Report:
    """Which items of a batch arrived, which may be retried, which were refused (id → why)."""

    delivered: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # what was left out (a key...) → why

    def fail(self, ids: Collection[int], err: BaseException) -> None:
        """Move ``ids`` out of ``delivered`` into ``failed`` or ``rejected`` by ``err``'s kind."""
        target = self.rejected if is_rejection(err) else self.failed
        for i in ids:
            self.delivered.discard(i)
            target[i] = short_error(err)

    def succeed(self, ids: Collection[int]) -> None:
        """Count ``ids`` as delivered, even if an earlier attempt in this batch failed them."""
        for i in ids:
            self.failed.pop(i, None)
            self.rejected.pop(i, None)
        self.delivered.update(ids)


def deliver(
    client: Any,
    run_id: str,
    spool: Spool,
    items: list[Item],
    recheck_images: bool | Collection[int] = (),
    parallel: bool = True,
) -> Report:
    """Send ``items`` to ``run_id``; report which arrived, which may be retried, which were refused.

    Metrics to a tracking server go through MLflow's asynchronous batch logging while images
    and files upload (to a local store synchronously: its async queue costs 2.5x the CPU); a
    run status item is applied only after everything before it arrived. Images in
    ``recheck_images`` (or all, with True) are looked for on the server first, not sent twice.
    ``parallel=False`` sends everything on the calling thread (at interpreter exit, when no new
    thread may start).
    """
    report = Report()
    files = [it for it in items if it["kind"] in ("image", "artifact")]
    error = _skip_present_images(client, run_id, files, recheck_images, report)
    if error is not None:
        report.fail([it["id"] for it in items], error)
        return report
    metric_jobs = _send_metrics(client, run_id, items, report, parallel)
    _send_tags(client, run_id, items, report)
    _send_files(client, run_id, spool, files, report, parallel)
    _await_metrics(client, run_id, metric_jobs, report)
    _end_run(client, run_id, items, report)
    _settle_refused(spool, items, report)
    return report


def _item_name(item: Mapping[str, Any]) -> str:
    """What a message calls an item: its key, its artifact path, or its kind."""
    if item["kind"] == "image":
        return f"image {item['key']!r}"
    if item["kind"] == "artifact":
        return f"file {item['artifact_path']}/{item.get('file')}"
    return {"end": "the run status", "tags": "a tag batch", "metrics": "a metric batch"}.get(
        item["kind"], str(item["kind"])
    )


def _settle_refused(spool: Spool, items: list[Item], report: Report) -> None:
    """Name every refused item in ``report.refused`` and take it out of the spool for good."""
    if not report.rejected:
        return
    for item in items:
        if item["id"] in report.rejected:
            report.refused.setdefault(_item_name(item), report.rejected[item["id"]])
    spool.mark_refused(report.rejected)


Part = tuple[int, str, Any]  # (item id, name for messages, MLflow entity)


def _bisect(
    send: Callable[[list[Any]], None], parts: list[Part], err: Exception, report: Report
) -> None:
    """A batch MLflow refused (``err``): send it in halves, down to the single entries it refuses.

    Each refused entry is named once in ``report.refused``; its item counts as delivered (the
    rest of it arrived). A transient error on a half fails that half's items (retried later).
    """
    if len(parts) == 1:
        report.refused.setdefault(repr(parts[0][1]), short_error(err))
        return
    middle = len(parts) // 2
    for half in (parts[:middle], parts[middle:]):
        try:
            send([entity for _, _, entity in half])
        except Exception as inner:
            if is_rejection(inner):
                _bisect(send, half, inner, report)
            else:
                report.fail({i for i, _, _ in half}, inner)


def _skip_present_images(
    client: Any,
    run_id: str,
    files: list[Item],
    recheck_images: bool | Collection[int],
    report: Report,
) -> BaseException | None:
    """Mark images an earlier attempt already stored as delivered; the error if listing failed."""
    recheck = set() if isinstance(recheck_images, bool) else set(recheck_images)
    check = [
        it
        for it in files
        if it["kind"] == "image" and (recheck_images is True or it["id"] in recheck)
    ]
    if not check:
        return None
    try:
        present = images_on_server(client, run_id)
    except Exception as err:
        return err
    report.delivered |= {it["id"] for it in check if _key(it) in present}
    return None


def _key(item: Mapping[str, Any]) -> tuple[str, int, int]:
    return (item["key"], item["step"], item["timestamp"])


def _send_metrics(
    client: Any, run_id: str, items: list[Item], report: Report, parallel: bool = True
) -> list[tuple[list[Part], Any]]:
    """Submit metric items in batches of at most MAX_METRICS (asynchronous to a tracking server
    if ``parallel``); return the jobs. A refused batch is split so that only the refused
    metrics stay out."""
    from mlflow.entities import Metric

    jobs: list[tuple[list[Part], Any]] = []
    chunk: list[Part] = []
    synchronous = not (parallel and is_remote(str(client.tracking_uri)))

    def submit() -> None:
        if not chunk:
            return
        parts = list(chunk)
        chunk.clear()
        try:
            metrics = [m for _, _, m in parts]
            ops = client.log_batch(run_id, metrics=metrics, synchronous=synchronous)
            jobs.append((parts, ops))
        except Exception as err:
            _refused_or_failed(client, run_id, parts, err, report)

    for item in items:
        if item["kind"] != "metrics":
            continue
        report.delivered.add(item["id"])
        for key, value in item["values"].items():
            metric = Metric(key, float(value), item["timestamp"], item["step"])
            chunk.append((item["id"], key, metric))
            if len(chunk) >= MAX_METRICS:
                submit()
    submit()
    return jobs


def _refused_or_failed(
    client: Any, run_id: str, parts: list[Part], err: Exception, report: Report
) -> None:
    """Split a refused metric batch (see :func:`_bisect`); fail a batch that may be retried."""
    if not is_rejection(err):
        report.fail({i for i, _, _ in parts}, err)
        return

    def send(metrics: list[Any]) -> None:
        client.log_batch(run_id, metrics=metrics, synchronous=True)

    _bisect(send, parts, err, report)


def _operation_error(ops: Any, err: BaseException) -> BaseException:
    """The first real error behind MLflow's combined async-logging failure, for classifying it."""
    for future in getattr(ops, "_operation_futures", []):
        inner = future.exception()
        if inner is not None:
            return inner
    return err


def _await_metrics(
    client: Any, run_id: str, jobs: list[tuple[list[Part], Any]], report: Report
) -> None:
    """Wait for the asynchronous metric batches; split a refused one, fail one that failed."""
    for parts, ops in jobs:
        try:
            if ops is not None:
                ops.wait()
        except Exception as err:
            inner = _operation_error(ops, err)
            _refused_or_failed(
                client, run_id, parts, inner if isinstance(inner, Exception) else err, report
            )


def _send_tags(client: Any, run_id: str, items: list[Item], report: Report) -> None:
    """Tags in small synchronous batches: a refused tag must not sink the metrics or other tags."""
    from mlflow.entities import RunTag

    def send(tags: list[Any]) -> None:
        client.log_batch(run_id, tags=tags)

    entries: list[Part] = [
        (it["id"], k, RunTag(k, v))
        for it in items
        if it["kind"] == "tags"
        for k, v in it["values"].items()
    ]
    for start in range(0, len(entries), MAX_TAGS):
        part = entries[start : start + MAX_TAGS]
        ids = {i for i, _, _ in part}
        try:
            send([tag for _, _, tag in part])
        except Exception as err:
            if not is_rejection(err):
                report.fail(ids, err)
                continue
            _bisect(send, part, err, report)
        report.delivered |= ids - set(report.failed) - set(report.rejected)


def _send_file(client: Any, run_id: str, spool: Spool, item: Mapping[str, Any]) -> None:
    """Upload one spooled artifact file (a histogram, a text, a ``File`` record)."""
    with tempfile.TemporaryDirectory(prefix="vizcallbacks-file-") as tmp:
        path = Path(tmp, item["file"])
        path.write_bytes(spool.read_payload(item))
        client.log_artifact(run_id, str(path), item["artifact_path"])


def _send_files(
    client: Any, run_id: str, spool: Spool, files: list[Item], report: Report, parallel: bool
) -> None:
    """Images (batched, see ``images.py``) and files; a file rewritten later in this batch is
    sent only once. Files go in parallel to a tracking server."""
    latest = {(it.get("artifact_path"), it["file"]): it["id"] for it in files}
    for it in files:
        if it["kind"] == "artifact" and latest[(it["artifact_path"], it["file"])] != it["id"]:
            report.delivered.add(it["id"])
    to_send = [it for it in files if it["id"] not in report.delivered]
    pictures = [it for it in to_send if it["kind"] == "image"]
    others = [it for it in to_send if it["kind"] != "image"]
    for item_id, error in send_images(client, run_id, spool, pictures, parallel).items():
        if error is None:
            report.delivered.add(item_id)
        else:
            report.fail([item_id], error)
    if parallel and len(others) > 1 and is_remote(str(client.tracking_uri)):
        with ThreadPoolExecutor(FILE_WORKERS, thread_name_prefix="vizcallbacks-mlflow") as pool:
            futures = [(it, pool.submit(_send_file, client, run_id, spool, it)) for it in others]
            for item, future in futures:
                _outcome(item, future.result, report)
    elif others:
        _send_files_together(client, run_id, spool, others, report)
    # An image whose upload arrived though the call failed is there: keep it once.
    unsure = [it for it in pictures if it["id"] not in report.delivered]
    if unsure:
        with contextlib.suppress(Exception):
            present = images_on_server(client, run_id)
            report.succeed([it["id"] for it in unsure if _key(it) in present])


def _send_files_together(
    client: Any, run_id: str, spool: Spool, items: list[Item], report: Report
) -> None:
    """Files written straight into a local artifact folder, or staged as one tree and copied by
    one ``log_artifacts`` call (per file, MLflow's path checks cost more than the copy); if that
    fails, each file alone, so that the one at fault is named and the others arrive."""
    try:
        local = local_artifact_dir(client, run_id)
    except Exception as err:
        report.fail([item["id"] for item in items], err)
        return
    folder: Any = (  # the local store's own folder: nothing to stage, nothing to copy
        contextlib.nullcontext(str(local))
        if local is not None
        else tempfile.TemporaryDirectory(prefix="vizcallbacks-files-")
    )
    with folder as tmp:
        root = Path(tmp)
        staged = []
        for item in items:
            try:
                target = root / item["artifact_path"] / item["file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(spool.read_payload(item))
                staged.append(item)
            except Exception as err:
                report.fail([item["id"]], err)
        try:
            if local is None:
                client.log_artifacts(run_id, tmp)
            report.delivered |= {item["id"] for item in staged}
        except Exception:
            for item in staged:
                _outcome(item, functools.partial(_send_file, client, run_id, spool, item), report)


def _outcome(item: Item, send: Callable[[], Any], report: Report) -> None:
    """Run ``send`` for ``item``; count it delivered, or failed / rejected by the error."""
    try:
        send()
        report.delivered.add(item["id"])
    except Exception as err:
        report.fail([item["id"]], err)


def _end_run(client: Any, run_id: str, items: list[Item], report: Report) -> None:
    """Apply run status items, once everything before them arrived."""
    for item in items:
        if item["kind"] != "end":
            continue
        if report.failed:
            report.failed[item["id"]] = "waiting for earlier items"
            continue
        try:
            client.set_terminated(run_id, status=item["status"], end_time=item["end_time"])
            report.delivered.add(item["id"])
        except Exception as err:
            report.fail([item["id"]], err)
