"""A sweep of 4 training processes logging at once to one MLflow server on PostgreSQL with proxied
artifacts, the server restarted mid-sweep: every (key, step) exactly once, nothing else stored."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from experiments.servers import MlflowServer
from tests.events import read_events, tag_steps
from tests.mlflow_server import IMAGE_FILE
from tests.postgres_server import PostgresCluster

ROOT = Path(__file__).resolve().parents[1]
RUNS = [f"sweep-{i}" for i in range(4)]
EPOCHS = 5


def _launch(uri: str, name: str, work: Path) -> subprocess.Popen[str]:
    work.mkdir(parents=True)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sweep_run", uri, "sweep", name, str(work), str(EPOCHS)],
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(paths: list[Path], procs: list[subprocess.Popen[str]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"a sweep process exited early:\n{proc.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, "the sweep processes did not reach epoch 2"
        time.sleep(0.2)


def _scalar_or_image(value: object) -> bool:
    """What MLflow stores per (key, step): a metric or an image (histograms go per step)."""
    return isinstance(value, float) or getattr(value, "dtype", None) == np.uint8


def _server_pairs(client, run_id: str) -> Counter[tuple[str, int]]:
    """Every (key, step) the server holds for a run: metrics and images, with repeats counted."""
    pairs: Counter[tuple[str, int]] = Counter()
    for key in client.get_run(run_id).data.metrics:
        pairs.update((key, m.step) for m in client.get_metric_history(run_id, key))
    for info in client.list_artifacts(run_id, "images"):
        if match := IMAGE_FILE.match(info.path):
            pairs[(match["key"].replace("~", "/"), int(match["step"]))] += 1
    return pairs


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sweep_of_four_logs_each_step_once_through_a_server_restart(
    postgres_mlflow_server: tuple[MlflowServer, PostgresCluster], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    server, cluster = postgres_mlflow_server
    procs = [_launch(server.uri, name, tmp_path / name) for name in RUNS]
    _wait_for([tmp_path / name / "ready" for name in RUNS], procs, timeout=600)
    server.kill()  # the server dies mid-sweep; the processes train on without it ...
    (tmp_path / "go").touch()
    time.sleep(3)
    server.start()  # ... and it comes back on the same database, artifacts and port
    (tmp_path / "back").touch()
    for name, proc in zip(RUNS, procs, strict=True):
        out, err = proc.communicate(timeout=600)
        (tmp_path / name / "stderr.txt").write_text(err)
        assert proc.returncode == 0 and "TRAINED" in out, err[-3000:]
        assert "could not be delivered" not in err, err[-3000:]
        assert not list((tmp_path / name / "spool").glob("*/items.jsonl")), name

    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("sweep")
    runs = {r.info.run_name: r.info.run_id for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == RUNS
    for name, run_id in runs.items():
        on_server = _server_pairs(client, run_id)
        assert max(on_server.values()) == 1, [p for p, n in on_server.items() if n > 1]
        events = read_events(tmp_path / name / "tensorboard")
        logged = {p for p in tag_steps(events) if _scalar_or_image(events[p[0]][p[1]])}
        assert logged - set(on_server) == set(), name  # nothing lost
        assert {step for key, step in on_server if key == "activations/conv_b"} == set(
            range(EPOCHS + 1)
        )

    run_ids = set(runs.values())
    assert {row[0] for row in cluster.query("SELECT run_uuid FROM runs")} == run_ids
    for table in ("metrics", "latest_metrics", "params", "tags"):
        assert {row[0] for row in cluster.query(f"SELECT run_uuid FROM {table}")} <= run_ids
    names = {row[0] for row in cluster.query("SELECT name FROM experiments")}
    assert names == {"Default", "sweep"}
    stored = {p.relative_to(server.artifacts).parts[:2] for p in server.artifacts.rglob("*.*")}
    assert {run for _, run in stored} == run_ids
    assert {experiment_id for experiment_id, _ in stored} == {experiment.experiment_id}
