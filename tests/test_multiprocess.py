"""The loggers in multi-process training on 127.0.0.1: JAX ``keras.distribution.DataParallel`` over
2 processes (gloo CPU collectives), each with its own free coordinator port. Process 0's logs are
compared with the same loggers replayed in one process over the same weights, step by step."""

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
from tests.events import holds_step, read_events, tag_steps

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


# What each logger logs, a scalar and a picture of each: all must be in process 0's logs.
LOGGED = (
    "activation_mean/conv_b",
    "activations/conv_b",
    "gradcam_probability/conv_b/0",
    "gradcam/conv_b/1",
    "attribution_deletion_auc/saliency",
    "attribution/saliency/0",
    "gradient_norm/conv_a",
    "gradient_flow/all_layers",
    "cka_to_initial/conv_b",
    "cka/layers",
)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_jax_data_parallel_two_processes_only_process_0_writes(tmp_path: Path) -> None:
    results = [_result(p) for p in _jax_processes(tmp_path)]
    assert [(r["process_count"], r["devices"]) for r in results] == [(2, 2), (2, 2)]
    assert results[0]["checksum"] == results[1]["checksum"]  # one model, kept in step
    assert sorted(p.name for p in tmp_path.iterdir()) == ["process0", "process0-one-process"]
    events = read_events(tmp_path / "process0")  # raises if any (tag, step) was written twice
    one = read_events(tmp_path / "process0-one-process")
    assert tag_steps(events) == tag_steps(one)
    for tag in LOGGED:
        assert sorted(events[tag]) == [0, 1, 2], tag
    for tag, steps in events.items():
        for step, value in steps.items():
            if isinstance(value, float):  # every statistic, float32 apart
                np.testing.assert_allclose(value, one[tag][step], rtol=1e-5, atol=1e-6, err_msg=tag)
            elif value.dtype == np.uint8:  # every picture, a colour level apart at most
                assert np.abs(value.astype(int) - one[tag][step]).max() <= 1, (tag, step)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_jax_worker_killed_mid_training_leaves_process_0_logs_readable(tmp_path: Path) -> None:
    chief, worker = _jax_processes(tmp_path, "1")  # process 1 dies as epoch 1 begins
    assert worker.wait(timeout=400) == 17, worker.communicate()[1][-3000:]
    # Process 0 stalls or fails in its next collective: once it wrote step 1 (before process 1
    # died), or after 60 s, it is killed as an operator would.
    deadline = time.monotonic() + 60
    written = ("activations/conv_b", "activation_mean/conv_b")
    while chief.poll() is None and time.monotonic() < deadline:
        if holds_step(tmp_path / "process0", written, 1):
            break
        time.sleep(0.5)
    if chief.poll() is None:
        os.killpg(chief.pid, signal.SIGKILL)
    chief.communicate()
    events = read_events(tmp_path / "process0")
    assert not (tmp_path / "process1").exists()
    assert {0, 1} <= set(events["activations/conv_b"]), sorted(events["activations/conv_b"])
    assert {0, 1} <= set(events["activation_mean/conv_b"])
