"""Nothing lost, nothing stuck: ``python -m vizcallbacks sync`` and ``compare`` on damaged spools,
foreign directories, bad tracking URIs, a full disk and a training process killed with SIGKILL.

Real spools written by ``MLflowWriter`` to a dead port, real SQLite stores and a real
``mlflow server``, the command run as a subprocess. No mocks.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient

from tests.mlflow_server import MlflowServer, free_port
from vizcallbacks.records import Histogram, Image, Scalars, Text
from vizcallbacks.writers.mlflow import MLflowWriter
from vizcallbacks.writers.mlflow.spool import Spool

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("no_mlflow_env")


def spooled(root: Path, steps: int = 2, experiment: str = "damaged", **kw: Any) -> Path:
    """A spool of ``steps`` steps (image, scalars, histogram, text) a dead server never got."""
    writer = MLflowWriter(
        tracking_uri=f"http://127.0.0.1:{free_port()}",
        experiment_name=experiment,
        spool_dir=root,
        **kw,
    )
    rng = np.random.default_rng(0)
    for step in range(steps):
        pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        writer.write(
            [
                Image("activations/conv", pixels),
                Scalars({"loss": 1.0 / (step + 1)}),
                Histogram("weights/conv", rng.normal(size=50)),
                Text("notes", f"step {step}"),
            ],
            step,
        )
    writer.close()
    (directory,) = root.iterdir()
    return directory


def items_of(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / "items.jsonl").read_text().splitlines()]


def cli(*args: str, limit: int | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m vizcallbacks ARGS`` in a subprocess, files optionally capped at ``limit``."""

    def cap() -> None:  # a full disk: writes past ``limit`` bytes fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        assert limit is not None
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "vizcallbacks", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        preexec_fn=cap if limit is not None else None,
        check=False,
    )


def errors(done: subprocess.CompletedProcess) -> list[str]:
    """The command's own stderr lines (not library warnings)."""
    return [
        line
        for line in done.stderr.splitlines()
        if line.strip() and "Warning:" not in line and not line.startswith(" ")
    ]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def only_run(client: MlflowClient, experiment: str) -> Any:
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    (run,) = client.search_runs([found.experiment_id])
    return run


def image_steps(client: MlflowClient, run_id: str, key: str = "activations") -> list[int]:
    """The steps of the images under ``key`` (``/`` stored as ``~``), one entry per file."""
    names = [f.path for f in client.list_artifacts(run_id, "images")]
    prefix = "images/" + key.replace("/", "~")
    return sorted(
        int(n.split("+step+")[1].split("+")[0])
        for n in names
        if n.endswith(".png") and n.startswith(prefix + "+")
    )


# 1. sync validates before it touches anything ---------------------------------------------------
def test_damaged_items_are_named_and_skipped_and_the_rest_delivered(tmp_path: Path) -> None:
    directory = spooled(tmp_path / "spool")
    lines = (directory / "items.jsonl").read_text().splitlines(keepends=True)
    items = items_of(directory)
    # step 0: its image, its text, its metrics (the scalar and the histogram's quantiles)
    assert [it["kind"] for it in items[:4]] == ["image", "artifact", "metrics", "image"]
    lines[0] = lines[0][:40] + "\n"  # a half-written middle line: the step-0 image
    del items[1]["kind"]
    lines[1] = json.dumps(items[1]) + "\n"
    items[2]["kind"] = "video"
    lines[2] = json.dumps(items[2]) + "\n"
    (directory / "items.jsonl").write_text("".join(lines))
    histogram = next(it for it in items if it.get("file") == "step_000000.json")
    with open(directory / "payloads" / histogram["pack"], "r+b") as pack:  # zeroed on disk
        pack.seek(histogram["offset"])
        pack.write(bytes(histogram["size"]))
    text = next(it for it in items[3:] if it.get("artifact_path") == "text/notes")  # step 1's
    with open(directory / "payloads" / text["pack"], "r+b") as pack:  # after its step's image
        pack.truncate(text["offset"] + 1)

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = cli("sync", str(directory), "--tracking-uri", uri)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    said = "\n".join(errors(done))
    assert "item 1 (activ" in said and "cut short" in said
    assert "item 2 " in said and "no kind" in said
    assert "item 3 " in said and "unknown kind 'video'" in said
    assert (
        f"item {histogram['id']} (histograms): its file step_000000.json is not valid JSON" in said
    )
    assert f"item {text['id']} (text/notes): its file step_000001.md is cut short" in said

    client = MlflowClient(uri)
    run = only_run(client, "damaged")
    run_id = run.info.run_id
    assert image_steps(client, run_id, "activations/conv") == [1]  # the good image arrived
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1]  # 0 had no kind
    hist = [f.path for f in client.list_artifacts(run_id, "histograms")]
    assert hist == ["histograms/step_000001.json"]
    assert run.info.status == "FINISHED"  # the end item came after the damaged ones

    again = cli("sync", str(directory), "--tracking-uri", uri)
    assert again.returncode == 1 and "Traceback" not in again.stderr  # still named, ...
    assert image_steps(client, run_id, "activations/conv") == [1]  # ... and nothing sent twice


def test_a_foreign_directory_is_refused_untouched(tmp_path: Path) -> None:
    other = tmp_path / "other-program"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"name": "not ours", "epochs": 3}))
    (other / "items.jsonl").write_text('{"line": 1}\n{"line": 2')  # no newline at the end
    before = snapshot(other)
    done = cli("sync", str(other), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    said = errors(done)
    assert len(said) == 1 and str(other) in said[0] and "not a vizcallbacks spool" in said[0]
    assert snapshot(other) == before
    assert sorted(p.name for p in other.iterdir()) == ["items.jsonl", "run.json"]  # no lock


def test_every_spool_of_a_root_is_tried(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    broken = root / "broken-0000"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text('{"format": 1, "spool_id": ')  # cut short
    old = time.time() - 3600
    os.utime(broken / "run.json", (old, old))  # the oldest: tried first
    good = spooled(tmp_path / "tmp", experiment="good")
    good = good.rename(root / good.name)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = cli("sync", str(root), "--tracking-uri", uri)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert any("broken-0000" in line for line in errors(done))
    assert "nothing is left" in done.stderr
    run = only_run(MlflowClient(uri), "good")
    assert image_steps(MlflowClient(uri), run.info.run_id, "activations/conv") == [0, 1]


def test_opening_never_writes_and_a_line_cut_short_is_handled_in_memory(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path / "s", {"tracking_uri": "x", "spool_id": "abc"})
    spool.append("metrics", {"step": 0, "timestamp": 1, "values": {"a": 1.0}})
    spool.append("image", {"key": "k", "step": 0, "timestamp": 1}, ("image.png", b"png"))
    items = tmp_path / "s" / "items.jsonl"
    items.write_bytes(items.read_bytes()[:-20])  # a crash mid-write of the image's line
    before = snapshot(tmp_path / "s")

    opened = Spool.open(tmp_path / "s")
    assert snapshot(tmp_path / "s") == before  # not even a newline added
    assert [it["id"] for it in opened.pending()] == [1]
    assert opened.incomplete is not None and opened.incomplete.item_id == 2

    # A writer resuming the spool appends right after the torn text: the new item survives,
    # under the torn one's id (its append never returned, so nobody relied on it).
    third = opened.append("metrics", {"step": 1, "timestamp": 2, "values": {"a": 2.0}})
    assert third["id"] == 2
    again = Spool.open(tmp_path / "s")
    assert [it["id"] for it in again.pending()] == [1, 2]
    assert again.pending()[1]["kind"] == "metrics"
    assert again.damaged == () and again.incomplete is None


# 2. Bad tracking URIs are one line --------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "uri"),
    [("sync", "bogus://x"), ("sync", "/nonexistent"), ("compare", "sqlite:////etc/hostname")],
)
def test_a_bad_tracking_uri_is_one_line(tmp_path: Path, command: str, uri: str) -> None:
    if command == "sync":
        directory = spooled(tmp_path / "spool")
        before = snapshot(directory)
        done = cli("sync", str(directory), "--tracking-uri", uri)
        assert snapshot(directory) == before
    else:
        done = cli("compare", "a", "b", "--tracking-uri", uri, "--output", str(tmp_path / "x.png"))
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    said = errors(done)
    assert len(said) == 1, said
    assert uri in said[0] and "--tracking-uri" in said[0]


# 3. A full disk during sync ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_full_disk_is_found_before_the_run_is_created(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    directory = spooled(tmp_path / "spool", experiment="disk-before")
    before = snapshot(directory)
    done = cli("sync", str(directory), "--tracking-uri", mlflow_server.uri, limit=0)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    said = errors(done)
    assert len(said) == 1 and "cannot write to the spool" in said[0], said
    client = MlflowClient(mlflow_server.uri)
    assert client.get_experiment_by_name("disk-before") is None  # no empty RUNNING run
    after = snapshot(directory)
    assert after.pop("lock") == b"" and after == before  # intact, only the lock file added

    done = cli("sync", str(directory), "--tracking-uri", mlflow_server.uri)
    assert done.returncode == 0, done.stderr[-3000:]
    run = only_run(client, "disk-before")
    assert image_steps(client, run.info.run_id, "activations/conv") == [0, 1]
    assert run.info.status == "FINISHED"


@pytest.mark.slow
def test_a_disk_full_midway_is_one_line_and_a_rerun_completes_once(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    writer = MLflowWriter(
        tracking_uri=f"http://127.0.0.1:{free_port()}",
        experiment_name="disk-midway",
        spool_dir=tmp_path / "spool",
    )
    steps = 700  # more than one delivery round (512 items)
    writer.write([Image("activations/conv", np.zeros((8, 8, 1), np.uint8))], 0)
    for step in range(steps):
        writer.write([Scalars({"loss": float(step)})], step)
    writer.close()
    (directory,) = (tmp_path / "spool").iterdir()

    # delivered.txt holds the first round's ids (1940 bytes); the second round's do not fit
    done = cli("sync", str(directory), "--tracking-uri", mlflow_server.uri, limit=2000)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    failed = [line for line in errors(done) if "cannot write to the spool" in line]
    assert len(failed) == 1 and "midway" in failed[0], errors(done)
    client = MlflowClient(mlflow_server.uri)
    run_id = only_run(client, "disk-midway").info.run_id

    done = cli("sync", str(directory))
    assert done.returncode == 0, done.stderr[-3000:]
    history = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == list(range(steps))  # each step exactly once
    assert image_steps(client, run_id, "activations/conv") == [0]
    assert client.get_run(run_id).info.status == "FINISHED"


# 4. Runs left RUNNING are ended by sync ---------------------------------------------------------
TRAIN = """
import sys, time
import keras, numpy as np
from keras import layers
import vizcallbacks as vc
from vizcallbacks.writers.mlflow import MLflowWriter

uri, spool = sys.argv[1], sys.argv[2]
x = np.random.default_rng(0).random((64, 16, 16, 1), dtype=np.float32)
y = np.arange(64) % 10
inputs = keras.Input((16, 16, 1))
h = layers.Conv2D(4, 3, activation="relu", name="conv_a")(inputs)
h = layers.GlobalAveragePooling2D(name="gap")(h)
model = keras.Model(inputs, layers.Dense(10, activation="softmax", name="probs")(h))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
writer = MLflowWriter(tracking_uri=uri, experiment_name="killed", spool_dir=spool)

class Say(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        print(f"epoch {epoch}", flush=True)
        time.sleep(0.5)

model.fit(x, y, epochs=1000, batch_size=32, verbose=0,
          callbacks=[vc.ActivationLogger(x[0], [writer]), Say()])
"""


@pytest.mark.slow
def test_a_run_killed_mid_training_is_ended_killed_by_sync(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TRAIN))
    process = subprocess.Popen(
        [sys.executable, str(script), mlflow_server.uri, str(tmp_path / "spool")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip() == "epoch 2":
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)

    (directory,) = (tmp_path / "spool").iterdir()
    spooled_steps = sorted({it["step"] for it in items_of(directory) if it["kind"] == "metrics"})
    assert spooled_steps[:3] == [0, 1, 2]
    assert all(it["kind"] != "end" for it in items_of(directory))

    done = cli("sync", str(tmp_path / "spool"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "KILLED" in done.stderr
    client = MlflowClient(mlflow_server.uri)
    run = only_run(client, "killed")
    assert run.info.status == "KILLED"
    assert run.info.end_time is not None
    history = client.get_metric_history(run.info.run_id, "activation_mean/conv_a")
    assert sorted(m.step for m in history) == spooled_steps  # every spooled step, once
    assert image_steps(client, run.info.run_id, "activations/conv_a") == spooled_steps

    again = cli("sync", str(tmp_path / "spool"))
    assert again.returncode == 0 and "KILLED" not in again.stderr  # ended once
    assert client.get_run(run.info.run_id).info.status == "KILLED"


# 5. compare -------------------------------------------------------------------------------------
@pytest.fixture
def evil_runs(tmp_path: Path) -> str:
    """Two runs with one image each, named with terminal escape sequences; the store's URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name in ("a\x1b[2J\x1b[31mred", "b\x07bell"):
        writer = MLflowWriter(uri, experiment_name="evil", run_name=name, spool_dir=tmp_path / "s")
        writer.write([Image("activations/conv", np.full((8, 8, 3), 90, np.uint8))], 0)
        assert writer.wait(timeout=120)
        writer.close()
    return uri


def test_compare_escapes_run_names_and_writes_the_format_the_suffix_names(
    evil_runs: str, tmp_path: Path
) -> None:
    out = tmp_path / "x.jpg"
    done = cli(
        "compare", "a\x1b[2J\x1b[31mred", "b\x07bell", "--tracking-uri", evil_runs,
        "--output", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "\x1b" not in done.stdout + done.stderr and "\x07" not in done.stdout
    assert "a\\x1b[2J\\x1b[31mred" in done.stdout and "b\\x07bell" in done.stdout
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG, not PNG bytes

    png = tmp_path / "x.png"
    assert cli("compare", "a\x1b[2J\x1b[31mred", "b\x07bell", "--tracking-uri", evil_runs,
               "--output", str(png)).returncode == 0  # fmt: skip
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_refuses_an_unknown_suffix_before_drawing(tmp_path: Path) -> None:
    out = tmp_path / "x.gif"
    done = cli("compare", "a", "b", "--tracking-uri", "sqlite:////nonexistent/db", "--output",
               str(out))  # fmt: skip
    assert done.returncode == 2
    said = errors(done)
    assert len(said) == 1 and "x.gif" in said[0] and ".png" in said[0], said
    assert not out.exists()
