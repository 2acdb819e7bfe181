"""What delivering images to MLflow costs: ``log_image`` per image (before) against our PNG bytes
uploaded as is, batched per round with ``log_artifacts`` (after).

Each trial writes ``steps`` x ``images`` grids (423x423 RGB, ``tile_maps`` of random maps, PNG
encoded beforehand as the callbacks do) through a real ``MLflowWriter`` and waits until
everything is delivered; measured are this process's CPU time (``time.process_time()``: all its
threads, not the server's) and wall time, per image, and the HTTP requests sent. Before and after
run interleaved, in alternating order, against a local SQLite store and a real ``mlflow server`` on
127.0.0.1. The "before" method is the former delivery code, swapped in for the comparison.

    python -m benchmarks.mlflow_images [--quick] [--pairs N] [--steps N] [--images N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Trial", "log_image_each", "main", "run_trial"]

Outcome = dict[int, BaseException | None]


def log_image_each(
    client: Any, run_id: str, spool: Any, items: Sequence[Any], parallel: bool = True
) -> Outcome:
    """The former delivery: the tag once per round, then each image decoded and handed to
    ``log_image`` (re-encoded as PNG, a WebP preview, the tag again), four at a time to a server."""
    from vizcallbacks.mlflow_store.server import is_remote
    from vizcallbacks.writers.mlflow.images import FILE_WORKERS, LOGGED_IMAGES_TAG, log_image

    if not items:
        return {}
    try:
        client.set_tag(run_id, LOGGED_IMAGES_TAG, "True")
    except Exception as err:
        return {it["id"]: err for it in items}

    def send(item: Any) -> BaseException | None:
        try:
            log_image(client, run_id, spool, item)
            return None
        except Exception as err:
            return err

    if parallel and is_remote(str(client.tracking_uri)):
        with ThreadPoolExecutor(FILE_WORKERS, thread_name_prefix="vizcallbacks-mlflow") as pool:
            results = list(pool.map(send, items))
    else:
        results = [send(it) for it in items]
    return {it["id"]: result for it, result in zip(items, results, strict=True)}


@contextmanager
def image_method(method: str) -> Iterator[None]:
    """Deliver images with ``method`` ("before" or "after") inside the block."""
    from vizcallbacks.writers.mlflow import delivery

    current = delivery.send_images
    if method == "before":
        delivery.send_images = log_image_each
    try:
        yield
    finally:
        delivery.send_images = current


class RequestCounter:
    """Counts the HTTP requests this process sends to a local server (MLflow uses ``requests``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextmanager
    def counting(self) -> Iterator[Counter[str]]:
        import requests

        original = requests.Session.request
        counts: Counter[str] = Counter()
        lock = self._lock

        def request(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            host, _, path = str(url).split("//", 1)[-1].partition("/")
            if not host.startswith(("127.0.0.1", "localhost")):  # not to the tracking server
                return original(session, method, url, *args, **kwargs)
            path = path.split("?")[0]
            kind = "artifact upload" if method == "PUT" else f"{method} /{_endpoint(path)}"
            with lock:
                counts[kind] += 1
            return original(session, method, url, *args, **kwargs)

        setattr(requests.Session, "request", request)  # noqa: B010 (a class attribute, on purpose)
        try:
            yield counts
        finally:
            setattr(requests.Session, "request", original)  # noqa: B010


def _endpoint(path: str) -> str:
    """``api/2.0/mlflow/runs/set-tag`` → ``runs/set-tag``: what a request was for."""
    parts = [p for p in path.split("/") if p]
    if "mlflow" in parts:
        parts = parts[parts.index("mlflow") + 1 :]
    return "/".join(parts[:2])


def render_images(steps: int, per_step: int) -> list[list[Any]]:
    """``steps`` lists of ``per_step`` distinct 423x423 grids, their PNG encoded now."""
    from vizcallbacks.records import Image
    from vizcallbacks.render.tiling import tile_maps

    rng = np.random.default_rng(0)
    variants = [
        Image("x", tile_maps(rng.random((52, 52, 64), dtype=np.float32))) for _ in range(20)
    ]
    for image in variants:
        assert image.pixels.shape == (423, 423, 3) and image.png
    return [
        [
            Image(f"activations/block{i}/conv", variants[(s * per_step + i) % len(variants)].pixels)
            for i in range(per_step)
        ]
        for s in range(steps)
    ]


class Trial(dict[str, Any]):
    """One measured delivery: store, method, CPU and wall seconds, images, requests."""


def run_trial(
    uri: str, store: str, method: str, images: list[list[Any]], spool_dir: Path, counter: Any
) -> Trial:
    """Write every step's images through an MLflowWriter and wait until all arrived."""
    from vizcallbacks.writers.mlflow import MLflowWriter

    for step_images in images:  # the PNG is encoded once by the record, before any writer
        for image in step_images:
            assert image.png
    with image_method(method), counter.counting() as counts:
        writer = MLflowWriter(
            uri, experiment_name=f"bench-{store}", spool_dir=spool_dir, close_timeout=600
        )
        writer.check()
        cpu, wall = time.process_time(), time.perf_counter()
        for step, step_images in enumerate(images):
            writer.write(step_images, step)
        delivered = writer.wait(timeout=600)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        writer.close()
    if not delivered:
        raise RuntimeError(f"{method} on {store}: not everything was delivered")
    n = sum(len(s) for s in images)
    return Trial(store=store, method=method, cpu=cpu, wall=wall, images=n, requests=dict(counts))


def check_run(uri: str, store: str, images: int) -> None:
    """The last run holds ``images`` images, each with its preview."""
    from mlflow import MlflowClient

    from vizcallbacks.mlflow_store.image_files import logged_images

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(f"bench-{store}")
    assert experiment is not None
    run = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"])[0]
    found = list(logged_images(client, run.info.run_id))
    assert len(found) == images, (store, len(found), images)


def table(trials: list[Trial]) -> str:
    """Markdown: per store and method, median ms of CPU and wall per image, requests per image."""
    lines = [
        "| store | method | CPU ms / image | wall ms / image | requests / image (kinds) |",
        "|---|---|---:|---:|---|",
    ]
    for store in dict.fromkeys(t["store"] for t in trials):
        for method in ("before", "after"):
            rows = [t for t in trials if t["store"] == store and t["method"] == method]
            n = rows[0]["images"]
            cpu = statistics.median(1000 * t["cpu"] / n for t in rows)
            wall = statistics.median(1000 * t["wall"] / n for t in rows)
            kinds = Counter[str]()
            for t in rows:
                kinds.update(t["requests"])
            per = {k: v / (n * len(rows)) for k, v in kinds.items() if not k.endswith("health")}
            total = sum(per.values())
            detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda x: -x[1]))
            shown = f"{total:.2f} ({detail})" if per else "0 (local store)"
            lines.append(f"| {store} | {method} | {cpu:.1f} | {wall:.1f} | {shown} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the interleaved pairs and print the raw trials and the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mlflow_images")
    parser.add_argument("--quick", action="store_true", help="4 steps x 10 images, 3 pairs")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--stores", default="sqlite,server")
    args = parser.parse_args(argv)
    steps = 4 if args.quick else args.steps
    images = render_images(steps, args.images)
    counter = RequestCounter()
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-images-") as tmp:
        root = Path(tmp)
        stores: dict[str, str] = {}
        server = None
        if "sqlite" in args.stores:
            stores["sqlite"] = f"sqlite:///{root / 'mlflow.db'}"
        if "server" in args.stores:
            from experiments.servers import MlflowServer

            (root / "server").mkdir()
            server = MlflowServer(root / "server")
            server.start()
            stores["server"] = server.uri
        cwd = Path.cwd()
        os.chdir(root)  # the SQLite store's artifacts (./mlruns) land in the temporary folder
        try:
            for pair in range(args.pairs):
                order = ("before", "after") if pair % 2 == 0 else ("after", "before")
                for store, uri in stores.items():
                    for method in order:
                        trial = run_trial(uri, store, method, images, root / "spool", counter)
                        check_run(uri, store, trial["images"])
                        trials.append(trial)
                        print(
                            f"pair {pair} {store:6} {method:6} cpu {trial['cpu']:6.2f} s "
                            f"wall {trial['wall']:6.2f} s {trial['requests']}",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            os.chdir(cwd)
            if server is not None:
                server.stop()
    n = trials[0]["images"]
    print(f"\n{n} images per trial ({steps} steps x {args.images}), {args.pairs} pairs, medians:")
    print(table(trials))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
