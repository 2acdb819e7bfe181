"""One log directory, one writer: a second TensorBoardWriter on a directory in use (in this
process or another) writes to its own sub-directory, named in one warning, so no (tag, step) is
written twice into one run; a crashed holder leaves no lock behind. Two processes sharing one
``spool_dir`` each deliver their own run, every (key, step) once.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from tests.events import read_events
from tests.mlflow_server import MlflowServer
from tests.test_mlflow_writer import metric_steps, only_run
from vizcallbacks.records import Scalars
from vizcallbacks.replay.sync import sync_spool
from vizcallbacks.writers.file_lock import DIRECTORY_LOCK
from vizcallbacks.writers.mlflow import MLflowWriter
from vizcallbacks.writers.tensorboard import TensorBoardWriter

ROOT = Path(__file__).resolve().parents[1]
STEPS = [0, 1, 2, 3]  # the opening snapshot, then three epochs


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_second_writer_in_this_process_gets_its_own_sub_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = TensorBoardWriter(tmp_path), TensorBoardWriter(tmp_path)
    first.check()
    assert first.directory == tmp_path and warnings_of(caplog) == []
    second.check()
    assert second.directory.parent == tmp_path
    (told,) = warnings_of(caplog)
    assert str(second.directory) in told and "no step is logged twice" in told
    for writer in (first, second):
        writer.write([Scalars({"loss": 1.0})], 0)
    assert read_events(tmp_path) == {"loss": {0: 1.0}}  # would raise on a step written twice
    assert read_events(second.directory) == {"loss": {0: 1.0}}
    first.close()
    second.close()
    again = TensorBoardWriter(tmp_path)  # closed writers let go of their directories
    again.check()
    assert again.directory == tmp_path
    again.close()


HOLDER = """
import sys, time
from pathlib import Path
from vizcallbacks.writers.file_lock import claim_directory
held = claim_directory(Path(sys.argv[1]), "holder")  # kept open: the lock stays
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        taken = TensorBoardWriter(tmp_path)
        taken.check()
        assert taken.directory != tmp_path  # in use: its own sub-directory
        taken.close()
    finally:
        holder.kill()  # SIGKILL: no exit handler runs
        holder.wait()
    assert (tmp_path / DIRECTORY_LOCK).exists()
    writer = TensorBoardWriter(tmp_path)
    writer.check()
    assert writer.directory == tmp_path
    writer.close()


def start(name: str, log_dir: Path, spool_dir: Path, uri: str, hold: Path | str) -> Any:
    command = [sys.executable, "-m", "tests.shared_dir_script", name, str(log_dir)]
    return subprocess.Popen(
        [*command, str(spool_dir), uri, str(hold)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def run_overlapping(tmp_path: Path, uri: str) -> tuple[str, str]:
    """Training A holds the log directory after its second epoch while B trains start to end."""
    log_dir, spool_dir, hold = tmp_path / "logs", tmp_path / "spool", tmp_path / "hold"
    hold.mkdir()
    first = start("first", log_dir, spool_dir, uri, hold)
    try:
        deadline = time.monotonic() + 240
        while not (hold / "ready").exists():
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.2)
        second = start("second", log_dir, spool_dir, uri, "-")
        out, err_second = second.communicate(timeout=300)
        assert second.returncode == 0 and "TRAINED" in out, err_second[-3000:]
    finally:
        (hold / "go").touch()
    out, err_first = first.communicate(timeout=300)
    assert first.returncode == 0 and "TRAINED" in out, err_first[-3000:]
    return err_first, err_second


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_processes_on_one_log_directory_never_write_a_step_twice(tmp_path: Path) -> None:
    err_first, err_second = run_overlapping(tmp_path, "-")
    log_dir = tmp_path / "logs"
    (own,) = [p for p in log_dir.iterdir() if p.is_dir() and p.name != "files"]
    told = [line for line in err_second.splitlines() if "is being written by another" in line]
    assert len(told) == 1 and str(own) in told[0], err_second[-3000:]
    assert "is being written by another" not in err_first
    for directory in (log_dir, own):
        events = read_events(directory)  # raises on a (tag, step) written twice
        assert sorted(events["activations/conv_a"]) == STEPS, directory
        assert (directory / "files/evolution/conv_a.gif").is_file(), directory  # each its own
    assert sorted(p.parent for p in log_dir.rglob("events.out.tfevents.*")) == [log_dir, own]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_processes_sharing_a_spool_dir_each_deliver_their_run_once(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    run_overlapping(tmp_path, mlflow_server.uri)
    client = MlflowClient(mlflow_server.uri)
    for name in ("first", "second"):
        run = only_run(client, name)
        assert run.info.status == "FINISHED"
        assert metric_steps(client, run.info.run_id, "activation_mean/conv_a") == STEPS
    assert not (tmp_path / "spool").exists()


def test_sync_leaves_the_run_of_a_live_writer_running(
    mlflow_server: MlflowServer, tmp_path: Path, no_mlflow_env: None
) -> None:
    writer = MLflowWriter(mlflow_server.uri, experiment_name="live", spool_dir=tmp_path)
    writer.check()
    writer.write([Scalars({"activation_mean/conv_a": 1.0})], 0)
    (spool,) = [p.parent for p in tmp_path.glob("*/run.json")]
    result = sync_spool(spool)  # the writer is open: its process still trains
    assert result.ended is None
    client = MlflowClient(mlflow_server.uri)
    assert only_run(client, "live").info.status == "RUNNING"
    writer.write([Scalars({"activation_mean/conv_a": 2.0})], 1)
    writer.close()
    run = only_run(client, "live")
    assert run.info.status == "FINISHED"
    assert metric_steps(client, run.info.run_id, "activation_mean/conv_a") == [0, 1]
