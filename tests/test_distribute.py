"""The loggers under tf.distribute: several devices, and two worker processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.events import holds_step, read_events, tag_steps

ROOT = Path(__file__).resolve().parents[1]


def _run(
    kind: str, log_dir: Path, env: dict[str, str] | None = None, *extra: str
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.distribute_run", kind, str(log_dir), *extra],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_two_devices_logs_once_with_single_device_statistics(tmp_path: Path) -> None:
    result = _result(_run("mirrored", tmp_path))
    assert result["replicas"] == 2
    events = read_events(tmp_path)  # raises if any (tag, step) was written twice
    assert {step for tag, step in tag_steps(events) if tag == "activations/conv_b"} == {0, 1, 2}
    for layer, mean in result["single_device_means"].items():
        np.testing.assert_allclose(events[f"activation_mean/{layer}"][2], mean, rtol=1e-5)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multiworker_only_chief_writes(tmp_path: Path, mlflow_server) -> None:
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {"TF_CONFIG": json.dumps(config), "MLFLOW_TRACKING_URI": mlflow_server.uri}
        procs.append(_run("multiworker", tmp_path / f"worker{index}", env))
    results = [_result(p) for p in procs]
    assert [r["replicas"] for r in results] == [2, 2]
    chief = read_events(tmp_path / "worker0")
    for tag in ("activations/conv_b", "gradcam/conv_b/0", "gradcam/conv_b/1"):
        assert sorted(chief[tag]) == [0, 1, 2], tag
    for layer, mean in results[0]["single_device_means"].items():
        np.testing.assert_allclose(chief[f"activation_mean/{layer}"][2], mean, rtol=1e-4)
    assert not (tmp_path / "worker1").exists()

    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("multiworker")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "activation_mean/conv_b")
    assert sorted(m.step for m in history) == [0, 1, 2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_multiworker_worker_killed_mid_training_leaves_chief_logs_readable(
    tmp_path: Path,
) -> None:
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        procs.append(_run("multiworker", tmp_path / f"worker{index}", _tf_config(config), "1"))
    chief, worker = procs
    assert worker.wait(timeout=400) == 17, worker.communicate()[1][-3000:]
    # The chief stalls or fails in its next all-reduce: once it wrote step 1 (before the worker
    # died), or after 60 s, it is killed as an operator would.
    deadline = time.monotonic() + 60
    written = ("activations/conv_b", "gradcam/conv_b/0")
    while chief.poll() is None and time.monotonic() < deadline:
        if holds_step(tmp_path / "worker0", written, 1):
            break
        time.sleep(0.5)
    if chief.poll() is None:
        os.killpg(chief.pid, signal.SIGKILL)
    chief.communicate()
    events = read_events(tmp_path / "worker0")
    assert {0, 1} <= set(events["activations/conv_b"]), sorted(events["activations/conv_b"])
    assert {0, 1} <= set(events["gradcam/conv_b/0"])
    assert not (tmp_path / "worker1").exists()


def _tf_config(config: dict) -> dict[str, str]:
    return {"TF_CONFIG": json.dumps(config), "MLFLOW_TRACKING_URI": ""}
