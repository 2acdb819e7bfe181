"""Delivering a batch of spooled items to one run, one small function per kind of item.

Shared by the writer's sender thread and by ``python -m vizcallbacks sync``. Each function adds
the ids it sent to a :class:`Report`, or the error that kept them back: transient (try again
later) or a rejection (sending again cannot help).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from vizcallbacks.writers.mlflow.server import (
    images_on_server,
    is_rejection,
    is_remote,
    short_error,
)
from vizcallbacks.writers.mlflow.spool import Spool

__all__ = ["ROUND_ITEMS", "Report", "deliver"]

ROUND_ITEMS = 256  # items per delivery round: the record of what was delivered grows as we go
LOGGED_IMAGES_TAG = "mlflow.loggedImages"  # what log_image sets: the run page shows its images
MAX_METRICS = 1000  # MLflow's per-request limits
MAX_TAGS = 100
FILE_WORKERS = 4  # parallel image uploads
Item = dict[str, Any]


@dataclass
class Report:
    """Which items of a batch arrived, which may be retried, which were refused (id → why)."""

    delivered: set[int] = field(default_factory=set)
    failed: dict[int, str] = field(default_factory=dict)
    rejected: dict[int, str] = field(default_factory=dict)

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
) -> Report:
    """Send ``items`` to ``run_id``; report which arrived, which may be retried, which were refused.

    Metrics go through MLflow's asynchronous batch logging while images upload in parallel; a
    run status item is applied only after everything before it arrived. Images in
    ``recheck_images`` (or all, with True) are looked for on the server first, not sent twice.
    """
    report = Report()
    files = [it for it in items if it["kind"] in ("image", "artifact")]
    error = _skip_present_images(client, run_id, files, recheck_images, report)
    if error is not None:
        report.fail([it["id"] for it in items], error)
        return report
    metric_jobs = _send_metrics(client, run_id, items, report)
    _send_tags(client, run_id, items, report)
    _send_files(client, run_id, spool, files, report)
    _await_metrics(metric_jobs, report)
    _end_run(client, run_id, items, report)
    return report


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
    client: Any, run_id: str, items: list[Item], report: Report
) -> list[tuple[set[int], Any]]:
    """Submit metric items in asynchronous batches of at most MAX_METRICS; return the jobs."""
    from mlflow.entities import Metric

    jobs: list[tuple[set[int], Any]] = []
    chunk: list[Any] = []
    chunk_ids: set[int] = set()

    def submit() -> None:
        if not chunk:
            return
        try:
            ops = client.log_batch(run_id, metrics=list(chunk), synchronous=False)
            jobs.append((set(chunk_ids), ops))
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
            if len(chunk) >= MAX_METRICS:
                submit()
    submit()
    return jobs


def _operation_error(ops: Any, err: BaseException) -> BaseException:
    """The first real error behind MLflow's combined async-logging failure, for classifying it."""
    for future in getattr(ops, "_operation_futures", []):
        inner = future.exception()
        if inner is not None:
            return inner
    return err


def _await_metrics(jobs: list[tuple[set[int], Any]], report: Report) -> None:
    """Wait for the asynchronous metric batches; fail the items of a batch that failed."""
    for ids, ops in jobs:
        try:
            if ops is not None:
                ops.wait()
        except Exception as err:
            report.fail(ids, _operation_error(ops, err))


def _send_tags(client: Any, run_id: str, items: list[Item], report: Report) -> None:
    """Tags in small synchronous batches: a refused tag must not sink the metrics."""
    from mlflow.entities import RunTag

    entries = [
        (it["id"], k, v) for it in items if it["kind"] == "tags" for k, v in it["values"].items()
    ]
    for start in range(0, len(entries), MAX_TAGS):
        part = entries[start : start + MAX_TAGS]
        ids = {i for i, _, _ in part}
        try:
            client.log_batch(run_id, tags=[RunTag(k, v) for _, k, v in part])
            report.delivered |= ids - set(report.failed) - set(report.rejected)
        except Exception as err:
            report.fail(ids, err)


def _send_file(client: Any, run_id: str, spool: Spool, item: Mapping[str, Any]) -> None:
    """Upload one image (its spooled PNG, through ``log_image``) or artifact file."""
    path = spool.payload(item)
    if not path.is_file():
        raise FileNotFoundError(f"the spooled file {path} is missing")
    if item["kind"] != "image":
        client.log_artifact(run_id, str(path), item["artifact_path"])
        return
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


def _send_files(client: Any, run_id: str, spool: Spool, files: list[Item], report: Report) -> None:
    """Images and files, in parallel; a file rewritten later in this batch is sent only once."""
    latest = {(it.get("artifact_path"), it["file"]): it["id"] for it in files}
    for it in files:
        if it["kind"] == "artifact" and latest[(it["artifact_path"], it["file"])] != it["id"]:
            report.delivered.add(it["id"])
    to_send = [it for it in files if it["id"] not in report.delivered]
    if any(it["kind"] == "image" for it in to_send):
        try:  # log_image sets this tag too: concurrent first inserts of it collide in SQL stores
            client.set_tag(run_id, LOGGED_IMAGES_TAG, "True")
        except Exception as err:
            report.fail([it["id"] for it in to_send], err)
            return
    if not to_send:
        return
    workers = FILE_WORKERS if is_remote(str(client.tracking_uri)) else 1  # local: no gain
    with ThreadPoolExecutor(workers, thread_name_prefix="vizcallbacks-mlflow") as pool:
        futures = [(it["id"], pool.submit(_send_file, client, run_id, spool, it)) for it in to_send]
        for item_id, future in futures:
            try:
                future.result()
                report.delivered.add(item_id)
            except Exception as err:
                report.fail([item_id], err)
    # An image whose upload arrived but whose follow-up call failed is there: keep it once.
    unsure = [it for it in to_send if it["kind"] == "image" and it["id"] not in report.delivered]
    if unsure:
        with contextlib.suppress(Exception):
            present = images_on_server(client, run_id)
            report.succeed([it["id"] for it in unsure if _key(it) in present])


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
