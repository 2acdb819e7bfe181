"""Nothing lost, nothing stuck: MLflowWriter when MLflow refuses an item, when the run id is odd,
when the training process dies, when the disk is full, when training resumes a run, and when
writers are shared. Real ``mlflow server``, real SQLite stores, real files and subprocesses.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from mlflow import MlflowClient

import vizcallbacks as vc
from tests.mlflow_server import MlflowServer, free_port
from tests.reliability_script import ENDINGS
from tests.test_mlflow_writer import grid, image_steps, metric_steps, only_run, small_cnn
from vizcallbacks.records import File, Histogram, Image, Scalars, Text
from vizcallbacks.tags import quantile_tag, shorten
from vizcallbacks.writers.mlflow import MLflowWriter
from vizcallbacks.writers.mlflow.spool import Spool

pytestmark = pytest.mark.usefixtures("no_mlflow_env")
ROOT = Path(__file__).resolve().parents[1]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def dead_uri() -> str:
    return f"http://127.0.0.1:{free_port()}"


# 1. One refused item never takes others down; a permanent error is never retried forever -----
@pytest.mark.timeout(300)
def test_refused_keys_are_named_once_and_everything_else_arrives(
    mlflow_server: MlflowServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad_metric = "x" * 300  # MLflow refuses keys over 250 characters
    bad_image = "activations/" + "y" * 300  # log_image's file name would exceed 255
    long_text = "dead_channel_indices/" + "z" * 300  # the writer builds paths from these
    long_histogram = "channel_means/" + "h" * 300
    long_file = "evolution/" + "w" * 300 + ".gif"
    writer = MLflowWriter(
        mlflow_server.uri, experiment_name="refused", spool_dir=tmp_path / "spool",
        close_timeout=120,
    )  # fmt: skip
    writer.check()
    good = [f"ok/{i}" for i in range(40)]
    for step in range(4):
        writer.write(
            [
                Scalars({bad_metric: 1.0, **{k: float(step) for k in good}}),
                Image(bad_image, grid(step)),
                Image("activations/conv_a", grid(step)),
                Text(long_text, f"step {step}"),
                Histogram(long_histogram, np.arange(4.0) + step),
            ],
            step,
        )
        writer.flush()
    writer.write([File(long_file, b"GIF89a")], 4)
    writer.close()  # returns: an item that can never go is not waited for (pytest's timeout)

    client = MlflowClient(mlflow_server.uri)
    run = only_run(client, "refused")
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    for key in good:  # every good (key, step), 160 of them
        assert metric_steps(client, run_id, key) == [0, 1, 2, 3], key
    p50 = shorten(quantile_tag(long_histogram, "p50"))
    assert metric_steps(client, run_id, p50) == [0, 1, 2, 3]
    assert image_steps(client, run_id)["activations/conv_a"] == [0, 1, 2, 3]
    text_dir = f"text/{shorten(long_text)}"
    texts = {Path(f.path).name for f in client.list_artifacts(run_id, text_dir)}
    assert texts == {f"step_{s:06d}.md" for s in range(4)}
    files = [f.path for f in client.list_artifacts(run_id, "files/evolution")]
    assert len(files) == 1 and files[0].endswith(".gif") and len(Path(files[0]).name) <= 160
    told = warnings_of(caplog)
    for bad in (bad_metric, bad_image):
        assert sum(bad in message for message in told) == 1, (bad[:20], told)
    assert not (tmp_path / "spool").exists()  # refused items are not kept for a sync that fails


# 2. Spool paths from a sanitized run id, always inside spool_dir ----------------------------
@pytest.mark.parametrize("run_id", ["../../x", "/tmp/abs-run", "a/../../b", "run id", "..", "é1"])
def test_an_implausible_run_id_is_refused_in_the_constructor(run_id: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(run_id))):
        MLflowWriter(dead_uri(), run_id=run_id, spool_dir=tmp_path / "a" / "spool")
    assert not list(tmp_path.rglob("run.json"))


def test_a_given_run_spools_inside_spool_dir_while_the_server_is_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool_dir = tmp_path / "a" / "spool"
    writer = MLflowWriter(dead_uri(), run_id="0a1b2c3d4e5f_run-7", spool_dir=spool_dir)
    writer.check()
    writer.write([Scalars({"activation_mean/conv_a": 1.0})], 0)
    writer.close()
    (spool,) = [p.parent for p in tmp_path.rglob("run.json")]
    assert spool.resolve().parent == spool_dir.resolve()
    assert spool.name.startswith("0a1b2c3d4e5f_run-7-")


# 3. A run whose training process ended is ended on the server ------------------------------
def run_script(mode: str, uri: str, spool_dir: Path, experiment: str, **kw: Any) -> Any:
    command = [sys.executable, "-m", "tests.reliability_script", mode, uri, str(spool_dir)]
    return subprocess.Popen(
        [*command, experiment], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, **kw,
    )  # fmt: skip


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "status"), [("interrupt", "KILLED"), ("error", "FAILED")])
def test_an_interrupted_process_ends_its_run(
    mlflow_server: MlflowServer, tmp_path: Path, mode: str, status: str
) -> None:
    experiment = f"ended-{mode}"
    process = run_script(mode, mlflow_server.uri, tmp_path / "spool", experiment)
    out, err = process.communicate(timeout=300)
    assert process.returncode != 0 and "TRAINED" not in out, err[-3000:]
    client = MlflowClient(mlflow_server.uri)
    run = only_run(client, experiment)
    assert run.info.status == status, err[-3000:]
    assert metric_steps(client, run.info.run_id, "activation_mean/conv_a") == [0, 1]
    assert not (tmp_path / "spool").exists(), err[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(("mode", "status"), list(ENDINGS.items()))
def test_every_way_a_process_ends_ends_its_run(
    mlflow_server: MlflowServer, tmp_path: Path, mode: str, status: str
) -> None:
    """Writers that were locals of a returned function included: FINISHED only when training
    finished, KILLED after Ctrl-C (caught or not) and SIGTERM, FAILED otherwise."""
    experiment = f"ends-{mode}"
    process = run_script(mode, mlflow_server.uri, tmp_path / "spool", experiment)
    out, err = process.communicate(timeout=300)
    if mode.startswith(("caught", "finish")):
        assert process.returncode == 0 and "INTERRUPTED" in out, err[-3000:]
    client = MlflowClient(mlflow_server.uri)
    run = only_run(client, experiment)
    assert run.info.status == status, err[-3000:]
    steps = [0, 1, 2, 3] if status == "FINISHED" else [0, 1]
    assert metric_steps(client, run.info.run_id, "activation_mean/conv_a") == steps
    assert not (tmp_path / "spool").exists(), err[-3000:]


@pytest.mark.slow
def test_an_interrupted_process_with_the_server_gone_names_the_sync_command_last(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    process = run_script("interrupt-after-go", mlflow_server.uri, tmp_path / "spool", "ended-down")
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "ready").exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.2)
        mlflow_server.kill()
        (tmp_path / "go").touch()
        out, err = process.communicate(timeout=120)
    finally:
        mlflow_server.launch()
    assert process.returncode != 0 and "TRAINED" not in out
    (spool,) = [p.parent for p in (tmp_path / "spool").glob("*/run.json")]
    line = last_line(err)
    assert f"python -m vizcallbacks sync {spool.resolve()}" in line, err[-3000:]
    assert any(
        it["kind"] == "end" and it["status"] == "KILLED" for it in Spool.open(spool).pending()
    )
    mlflow_server.wait_until_healthy()
    assert vc_sync(spool) == 0
    client = MlflowClient(mlflow_server.uri)
    assert only_run(client, "ended-down").info.status == "KILLED"


def vc_sync(spool: Path) -> int:
    from vizcallbacks.__main__ import main as cli

    return cli(["sync", str(spool)])


# 4. Full disk --------------------------------------------------------------------------------
def leftovers(root: Path) -> list[Path]:
    """Half-written files: ``*.tmp`` and empty payloads."""
    return [
        p
        for p in root.rglob("*")
        if p.is_file()
        and (p.suffix == ".tmp" or (p.stat().st_size == 0 and not p.name.endswith("lock")))
    ]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["full-before", "full-during"])
def test_a_full_disk_is_reported_once_and_training_goes_on(tmp_path: Path, mode: str) -> None:
    spool_dir = tmp_path / "spool"
    process = run_script(mode, dead_uri(), spool_dir, "full")
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0 and "TRAINED" in out, err[-3000:]
    assert err.count("MLflowWriter.write failed") == 1, err[-3000:]
    assert "Errno 28" not in err and "Traceback" not in err, err[-3000:]
    assert leftovers(spool_dir) == []
    for items in spool_dir.rglob("items.jsonl"):
        ids = {json.loads(line)["id"] for line in items.read_text().splitlines()}  # none cut short
        packs = {int(p.name.removesuffix(".pack")) for p in (items.parent / "payloads").iterdir()}
        assert packs <= ids  # no pack left behind by items that were never spooled


# 5. Resume never duplicates a step -----------------------------------------------------------
def test_last_step_of_a_resumed_run(mlflow_server: MlflowServer, tmp_path: Path) -> None:
    first = MLflowWriter(mlflow_server.uri, experiment_name="resume", spool_dir=tmp_path)
    first.check()
    assert first.last_step() == -1  # a new run
    keys = [f"activation_mean/layer_{i}" for i in range(50)]
    for step in range(3):
        first.write([Scalars(dict.fromkeys(keys, float(step)))], step)
    first.close()
    run_id = first.logged_run_id
    assert run_id is not None

    again = MLflowWriter(mlflow_server.uri, run_id=run_id, spool_dir=tmp_path)
    again.check()
    assert again.last_step() == 2
    again.write([Scalars({"activation_mean/layer_0": 3.0})], 3)
    assert again.last_step() == 2  # within one fit: what was there before it
    again.close()
    assert again.last_step() == 3  # the next fit goes on after what this one wrote


def test_last_step_counts_the_spool_while_the_server_is_down(tmp_path: Path) -> None:
    writer = MLflowWriter(dead_uri(), experiment_name="resume-down", spool_dir=tmp_path)
    writer.check()
    writer.write([Image("activations/conv_a", grid(0))], 4)
    assert writer.last_step() == 4
    writer.close()


# 6. The closing count is right when writers are shared -------------------------------------
def test_a_shared_writer_reports_its_undelivered_items_once(
    digits: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = MLflowWriter(dead_uri(), experiment_name="shared", spool_dir=tmp_path / "spool")
    x, y = digits
    loggers = [vc.ActivationLogger(x[0], [writer]), vc.FilterLogger([writer])]
    small_cnn().fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=loggers)
    for logger in loggers:
        logger.finish()  # again: harmless
    told = [m for m in warnings_of(caplog) if "could not be delivered" in m]
    assert len(told) == 1, told
    (spool,) = [p.parent for p in (tmp_path / "spool").glob("*/run.json")]
    count = int(re.match(r"vizcallbacks: (\d+) items", told[0])[1])  # type: ignore[index]
    assert count == len(Spool.open(spool).pending())
    assert keras.backend.backend() == "tensorflow"
