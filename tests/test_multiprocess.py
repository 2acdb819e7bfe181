"""The loggers in multi-process training on 127.0.0.1: JAX ``keras.distribution.DataParallel`` over
2 processes (gloo CPU collectives), each with its own free coordinator port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments.servers import free_port
from tests.events import read_events

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("jax", reason="JAX is not installed (pip install 'jax[cpu]')")


def _jax_processes(log_dir: Path, *extra: str) -> list[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "tests.jax_multiprocess_run", f"127.0.0.1:{free_port()}"]
    return [
        subprocess.Popen(
            [*command, str(rank), str(log_dir / f"process{rank}"), *extra],
            cwd=ROOT,
            env={**os.environ, "KERAS_BACKEND": "jax"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for rank in range(2)
    ]


def _result(proc: subprocess.Popen[str]) -> dict:
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_jax_data_parallel_two_processes_only_process_0_writes(tmp_path: Path) -> None:
    results = [_result(p) for p in _jax_processes(tmp_path)]
    assert [(r["process_count"], r["devices"]) for r in results] == [(2, 2), (2, 2)]
    assert results[0]["checksum"] == results[1]["checksum"]  # one model, kept in step
    assert not (tmp_path / "process1").exists()
    events = read_events(tmp_path / "process0")  # raises if any (tag, step) was written twice
    for tag in ("activations/conv_b", "gradcam/conv_b/0", "gradcam/conv_b/1"):
        assert sorted(events[tag]) == [0, 1, 2], tag
    for layer, mean in results[0]["single_device_means"].items():
        np.testing.assert_allclose(events[f"activation_mean/{layer}"][2], mean, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_jax_worker_killed_mid_training_leaves_process_0_logs_readable(tmp_path: Path) -> None:
    chief, worker = _jax_processes(tmp_path, "1")  # process 1 dies as epoch 1 begins
    assert worker.wait(timeout=400) == 17, worker.communicate()[1][-3000:]
    deadline = time.monotonic() + 60  # process 0 stalls or fails in the next collective
    while chief.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    if chief.poll() is None:
        os.killpg(chief.pid, signal.SIGKILL)
    chief.communicate()
    events = read_events(tmp_path / "process0")
    assert {0, 1} <= set(events["activations/conv_b"]), sorted(events["activations/conv_b"])
    assert {0, 1} <= set(events["activation_mean/conv_b"])
