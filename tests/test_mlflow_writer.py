"""MLflowWriter against a real ``mlflow server``: what the run page holds, read back through
``MlflowClient``; the server killed mid-training and the replay command; MLflow's default local
store; a user's active run; layer names that need cleaning. Real Keras training, no mocks.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import pytest
from keras import layers
from mlflow import MlflowClient
from PIL import Image as PILImage

import vizcallbacks as vc
from tests.mlflow_server import IMAGE_FILE, MlflowServer, free_port
from vizcallbacks.__main__ import main as cli
from vizcallbacks.records import File, Histogram, Image, Params, Scalars, Text
from vizcallbacks.writers.mlflow import MLflowWriter
from vizcallbacks.writers.mlflow.histograms import MAX_VALUES, HistogramFiles
from vizcallbacks.writers.mlflow.images import spooled_image
from vizcallbacks.writers.mlflow.spool import Spool

SPATIAL = ["conv_a", "pool_a", "conv_b"]  # 4-D outputs: grids
ALL_LAYERS = [*SPATIAL, "gap", "probs"]
CONVS = ["conv_a", "conv_b"]
MLFLOW_KEY = re.compile(r"^[A-Za-z0-9_\-./ ]+$")
pytestmark = pytest.mark.usefixtures("no_mlflow_env")


def small_cnn(names: tuple[str, ...] = ("conv_a", "pool_a", "conv_b", "gap", "probs")) -> Any:
    conv_a, pool_a, conv_b, gap, probs = names
    inputs = keras.Input((16, 16, 1))
    x = layers.Conv2D(4, 3, activation="relu", name=conv_a)(inputs)
    x = layers.MaxPooling2D(name=pool_a)(x)
    x = layers.Conv2D(8, 3, activation="relu", name=conv_b)(x)
    x = layers.GlobalAveragePooling2D(name=gap)(x)
    model = keras.Model(inputs, layers.Dense(10, activation="softmax", name=probs)(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def fit(
    digits: tuple[np.ndarray, np.ndarray],
    writer: MLflowWriter,
    epochs: int,
    model: Any = None,
    before: list[keras.callbacks.Callback] | None = None,
) -> list[Any]:
    """Train on 64 real digits with both loggers; return the loggers."""
    x, y = digits
    loggers = [vc.ActivationLogger(x[0], [writer]), vc.FilterLogger([writer])]
    (model or small_cnn()).fit(
        x[:64],
        y[:64],
        epochs=epochs,
        batch_size=32,
        verbose=0,
        callbacks=[*(before or []), *loggers],
    )
    return loggers


def only_run(client: MlflowClient, experiment: str) -> Any:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"experiment {experiment!r} was not created"
    runs = client.search_runs([found.experiment_id])
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def image_steps(client: MlflowClient, run_id: str) -> dict[str, list[int]]:
    """Every image key with the steps it has, read from the artifact names MLflow 3 writes."""
    steps: dict[str, list[int]] = defaultdict(list)
    for info in client.list_artifacts(run_id, "images"):
        match = IMAGE_FILE.match(info.path)
        if match:
            steps[match["key"].replace("~", "/")].append(int(match["step"]))
        else:
            assert info.path.endswith("+compressed.webp"), info.path
    return {key: sorted(found) for key, found in steps.items()}


def metric_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def assert_every_step_once(client: MlflowClient, run_id: str, epochs: int) -> None:
    """activation_mean/<layer> has steps 0..E, every image key one image per step, no repeats."""
    steps = list(range(epochs + 1))
    run = client.get_run(run_id)
    for layer in ALL_LAYERS:
        assert metric_steps(client, run_id, f"activation_mean/{layer}") == steps, layer
        assert metric_steps(client, run_id, f"channel_means_p50/{layer}") == steps, layer
    for key in run.data.metrics:  # whatever else the callbacks log: never twice per step
        found = metric_steps(client, run_id, key)
        assert len(found) == len(set(found)), (key, found)
    images = image_steps(client, run_id)
    expected = {
        f"{kind}/{layer}" for kind in ("activations", "mean_activation") for layer in SPATIAL
    }
    expected |= {f"filters/{layer}" for layer in CONVS}
    assert expected <= set(images), sorted(expected - set(images))
    for key in expected:
        assert images[key] == steps, (key, images[key])
    assert images["probe/input"] == [0]
    for key, found in images.items():
        assert len(found) == len(set(found)), (key, found)
    histograms = {Path(f.path).name for f in client.list_artifacts(run_id, "histograms")}
    assert histograms == {f"step_{s:06d}.json" for s in steps}


def sync_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "python -m vizcallbacks sync" in r.getMessage()
    ]


def spool_of(message: str) -> Path:
    match = re.search(r"python -m vizcallbacks sync (\S+)$", message)
    assert match, message
    return Path(match[1])


# Without a server: arguments, the spool, an unreachable server, MLflow's default store -------
def test_missing_mlflow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` meets without it
    with pytest.raises(ImportError, match=re.escape("pip install 'vizcallbacks[mlflow]'")):
        MLflowWriter()


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"on_unreachable": "ignore"}, ValueError, "on_unreachable"),
        ({"close_timeout": -1}, ValueError, "close_timeout"),
        ({"run_id": ""}, TypeError, "run_id"),
        ({"spool_dir": 3}, TypeError, "spool_dir"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], error: type, names: str) -> None:
    with pytest.raises(error, match=names):
        MLflowWriter(**kwargs)


def test_spool_survives_a_torn_line_and_counts_deliveries(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path / "s", {"tracking_uri": "x", "spool_id": "abc"})
    first = spool.append("metrics", {"step": 0, "timestamp": 1, "values": {"a": 1.0}})
    second = spool.append("artifact", {"artifact_path": "files"}, ("notes.md", b"notes"))
    with open(tmp_path / "s" / "items.jsonl", "a") as f:
        f.write('{"id": 3, "kind": "metr')  # a crash in the middle of a line
    spool.mark_delivered([second["id"]])
    assert not (tmp_path / "s" / "payloads" / second["pack"]).exists()  # delivered: dropped

    again = Spool.open(tmp_path / "s")
    assert [item["id"] for item in again.pending()] == [first["id"]]
    assert again.append("tags", {"values": {}})["id"] == 3  # ids go on after the last complete one
    assert Counter(i["kind"] for i in again.pending()) == {"metrics": 1, "tags": 1}


def test_the_id_of_a_damaged_item_is_never_given_again(tmp_path: Path) -> None:
    """A later item under a damaged one's id would be taken for it once that id is delivered."""
    spool = Spool.create(tmp_path / "s", {"tracking_uri": "x", "spool_id": "abc"})
    spool.append("metrics", {"step": 0, "timestamp": 1, "values": {"a": 1.0}})
    with open(tmp_path / "s" / "items.jsonl", "a") as f:
        f.write('{"id": 2, "kind": "video"}\n')  # whole, but not an item this version knows
    again = Spool.open(tmp_path / "s")
    assert [d.item_id for d in again.damaged] == [2]
    assert again.append("tags", {"values": {}})["id"] == 3


def test_unreachable_at_start_raises_when_asked(digits: Any, tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    writer = MLflowWriter(tracking_uri=uri, on_unreachable="raise", spool_dir=tmp_path / "spool")
    epochs_begun: list[int] = []
    seen = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs_begun.append(1))
    with pytest.raises(ConnectionError, match=rf"{re.escape(uri)} does not answer"):
        fit(digits, writer, epochs=1, before=[seen])
    assert epochs_begun == []  # stopped before the first training step


@pytest.mark.slow
def test_default_local_store_with_no_server_and_no_env(
    digits: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fit(digits, MLflowWriter(), epochs=1)

    assert (tmp_path / "mlflow.db").is_file()  # MLflow 3's default store: SQLite in the cwd
    assert not list(tmp_path.glob("mlruns/*/meta.yaml"))  # not the legacy file store
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = only_run(client, "Default")
    assert run.info.status == "FINISHED"
    assert_every_step_once(client, run.info.run_id, epochs=1)
    assert not (tmp_path / "vizcallbacks-spool").exists()


# Records written directly, without a fit --------------------------------------------------------
def grid(step: int) -> np.ndarray:
    """A small RGB picture that differs per step."""
    rng = np.random.default_rng(step)
    return rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)


def write_steps(writer: MLflowWriter, steps: int) -> list[Image]:
    """Every kind of record at steps 0..steps-1, as the callbacks will send them; the images."""
    images = []
    writer.check()
    writer.write([Params({"layers_logged": ["conv_a"], "every_n_epochs": 1})], 0)
    for step in range(steps):
        image = Image("activations/conv_a", grid(step))
        images.append(image)
        channel_means = np.array([0.0, 1.0, 2.0, 3.0, np.nan]) + step
        writer.write(
            [
                image,
                Scalars({"activation_mean/conv_a": 0.5 + step}),
                Histogram("channel_means/conv_a", channel_means),
                Text("dead_channel_indices/conv_a", f"step {step}: none"),
            ],
            step,
        )
        writer.flush()
    writer.write([File("evolution/conv_a.gif", b"GIF89a not really")], steps)
    return images


def assert_records_arrived(client: MlflowClient, run_id: str, images: list[Image]) -> None:
    """What write_steps wrote is in the run, each step once, the pixels unchanged."""
    steps = list(range(len(images)))
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert json.loads(run.data.tags["vizcallbacks.layers_logged"]) == ["conv_a"]
    assert run.data.tags["vizcallbacks.every_n_epochs"] == "1"
    assert not run.data.params
    assert metric_steps(client, run_id, "activation_mean/conv_a") == steps
    for stat in ("min", "p25", "p50", "p75", "max"):
        assert metric_steps(client, run_id, f"channel_means_{stat}/conv_a") == steps, stat
    p50 = {m.step: m.value for m in client.get_metric_history(run_id, "channel_means_p50/conv_a")}
    assert p50 == {s: 1.5 + s for s in steps}  # NaN left out of the quantiles
    assert image_steps(client, run_id) == {"activations/conv_a": steps}
    for info in client.list_artifacts(run_id, "images"):
        match = IMAGE_FILE.match(info.path)
        if match:
            local = client.download_artifacts(run_id, info.path)
            with PILImage.open(local) as picture:
                got = np.asarray(picture.convert("RGB"))
            np.testing.assert_array_equal(got, images[int(match["step"])].pixels)
    local = client.download_artifacts(run_id, f"histograms/step_{steps[-1]:06d}.json")
    values = json.loads(Path(local).read_text())["values"]["channel_means/conv_a"]
    assert values[:4] == [float(v + steps[-1]) for v in range(4)] and values[4] is None
    texts = {
        Path(f.path).name for f in client.list_artifacts(run_id, "text/dead_channel_indices/conv_a")
    }
    assert texts == {f"step_{s:06d}.md" for s in steps}
    files = [f.path for f in client.list_artifacts(run_id, "files/evolution")]
    assert files == ["files/evolution/conv_a.gif"]


def test_records_written_directly_reach_the_local_store(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = MLflowWriter(uri, experiment_name="direct", spool_dir=tmp_path / "spool")
    images = write_steps(writer, steps=3)
    assert writer.wait(timeout=120)
    writer.close()
    writer.close()  # twice is harmless
    client = MlflowClient(uri)
    run = only_run(client, "direct")
    assert writer.logged_run_id == run.info.run_id
    assert_records_arrived(client, run.info.run_id, images)
    assert not (tmp_path / "spool").exists()  # all delivered: nothing kept


def test_unreachable_spools_the_png_as_is_and_sync_sends_it_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    writer = MLflowWriter(dead, experiment_name="later", spool_dir=tmp_path / "spool")
    images = write_steps(writer, steps=2)
    (spool_path,) = writer.spool_dir.iterdir()
    spool = Spool.open(spool_path)
    spooled = {
        it["step"]: spooled_image(spool, it)[0] for it in spool.pending() if it["kind"] == "image"
    }
    assert spooled == {0: images[0].png, 1: images[1].png}  # the record's bytes, not re-encoded
    writer.close()
    warned = sync_warnings(caplog)
    assert len(warned) == 1 and "2 images" in warned[0], warned
    spool_dir = spool_of(warned[0])

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli(["sync", str(spool_dir), "--tracking-uri", uri]) == 0
    client = MlflowClient(uri)
    run = only_run(client, "later")
    assert_records_arrived(client, run.info.run_id, images)
    assert cli(["sync", str(spool_dir), "--tracking-uri", uri]) == 0  # again: nothing twice
    assert len(client.search_runs([run.info.experiment_id])) == 1
    assert_records_arrived(client, run.info.run_id, images)


def test_records_written_directly_reach_the_server(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    writer = MLflowWriter(mlflow_server.uri, experiment_name="direct-server", spool_dir=tmp_path)
    images = write_steps(writer, steps=2)
    writer.close()
    client = MlflowClient(mlflow_server.uri)
    assert_records_arrived(client, only_run(client, "direct-server").info.run_id, images)


def test_a_user_active_run_is_left_open(
    mlflow_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    client = MlflowClient(mlflow_server.uri)
    experiment_id = client.create_experiment("direct-user-run")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        writer = MLflowWriter(spool_dir=tmp_path / "spool")
        writer.check()
        writer.write([Scalars({"activation_mean/conv_a": 1.0})], 0)
        writer.close()
        assert writer.logged_run_id == run.info.run_id
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
    found = client.get_run(run.info.run_id)
    assert found.data.tags["vizcallbacks.version"] == vc.__version__
    assert metric_steps(client, run.info.run_id, "activation_mean/conv_a") == [0]


# With the server (booting since collection) ------------------------------------------------
def test_run_page_holds_every_step_params_and_tag(
    mlflow_server: MlflowServer, digits: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default spool directory lands here
    writer = MLflowWriter(tracking_uri=mlflow_server.uri, experiment_name="readback")
    fit(digits, writer, epochs=2)

    client = MlflowClient(mlflow_server.uri)
    run = only_run(client, "readback")
    assert run.info.status == "FINISHED"  # the writer started this run, so it ended it
    assert run.data.tags["vizcallbacks.version"] == vc.__version__
    options = run.data.tags  # tags, not params: the run page's image cards list every param
    assert json.loads(options["vizcallbacks.layers_logged"]) == ALL_LAYERS
    assert json.loads(options["vizcallbacks.probe_shape"]) == [1, 16, 16, 1]
    assert options["vizcallbacks.every_n_epochs"] == "1"
    assert not run.data.params
    assert_every_step_once(client, run.info.run_id, epochs=2)

    # The histogram file of a step holds every layer's per-channel means.
    local = client.download_artifacts(run.info.run_id, "histograms/step_000002.json", str(tmp_path))
    values = json.loads(Path(local).read_text())["values"]
    assert sorted(values) == sorted(f"channel_means/{layer}" for layer in ALL_LAYERS)
    assert len(values["channel_means/conv_b"]) == 8
    assert not (tmp_path / "vizcallbacks-spool").exists()  # all delivered: nothing kept


def test_active_user_run_is_used_and_left_open(
    mlflow_server: MlflowServer, digits: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.chdir(tmp_path)
    client = MlflowClient(mlflow_server.uri)
    experiment_id = client.create_experiment("user-run")
    with mlflow.start_run(experiment_id=experiment_id, run_name="lenet-same") as run:
        fit(digits, MLflowWriter(), epochs=1)
        active = mlflow.active_run()
        assert active is not None and active.info.run_id == run.info.run_id
        assert client.get_run(run.info.run_id).info.status == "RUNNING"
    assert only_run(client, "user-run").info.run_id == run.info.run_id  # no second run
    assert client.get_run(run.info.run_id).data.tags["vizcallbacks.version"] == vc.__version__
    assert_every_step_once(client, run.info.run_id, epochs=1)


def test_odd_layer_names_become_valid_distinct_keys(
    mlflow_server: MlflowServer, digits: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    inputs = keras.Input((16, 16, 1))
    h = inputs
    # TensorFlow accepts only [A-Za-z0-9_.>-] in layer names; ">" and ".." still need cleaning,
    # and the cleaned names collide with real ones: conv_1, conv_1_2, conv.1, conv.1_2.
    for name in ("conv_1", "conv>1", "conv.1", "conv..1"):
        h = layers.Conv2D(2, 3, padding="same", name=name)(h)
    h = layers.GlobalAveragePooling2D(name=".gap")(h)
    model = keras.Model(inputs, layers.Dense(10, activation="softmax", name="dense>out")(h))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    writer = MLflowWriter(tracking_uri=mlflow_server.uri, experiment_name="odd-names")
    fit(digits, writer, epochs=1, model=model)

    client = MlflowClient(mlflow_server.uri)
    run = only_run(client, "odd-names")
    means = sorted(k for k in run.data.metrics if k.startswith("activation_mean/"))
    assert means == [
        f"activation_mean/{name}"
        for name in ("conv.1", "conv.1_2", "conv_1", "conv_1_2", "dense_out", "gap")
    ]  # six layers, six keys: nothing collided
    for key in means:
        assert MLFLOW_KEY.match(key) and ".." not in key, key
        assert metric_steps(client, run.info.run_id, key) == [0, 1]
    grids = {k: s for k, s in image_steps(client, run.info.run_id).items() if k.startswith("acti")}
    assert len(grids) == 4 and all(steps == [0, 1] for steps in grids.values()), grids


@pytest.mark.slow
def test_unreachable_at_start_trains_then_sync_creates_the_run(
    mlflow_server: MlflowServer,
    digits: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    writer = MLflowWriter(tracking_uri=dead, experiment_name="late", spool_dir=tmp_path / "spool")
    fit(digits, writer, epochs=1)  # default on_unreachable="spool": training goes on

    start = [r.getMessage() for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(start) == 1 and "on_unreachable='raise'" in start[0], start
    warned = sync_warnings(caplog)
    assert len(warned) == 1, warned
    spool_dir = spool_of(warned[0])
    started = Spool.open(spool_dir).run["start_time"]

    assert cli(["sync", str(spool_dir), "--tracking-uri", mlflow_server.uri]) == 0
    client = MlflowClient(mlflow_server.uri)
    run = only_run(client, "late")
    assert run.info.start_time == started  # the run carries the training's time, not the sync's
    assert run.info.status == "FINISHED"
    assert_every_step_once(client, run.info.run_id, epochs=1)
    assert cli(["sync", str(spool_dir), "--tracking-uri", mlflow_server.uri]) == 0
    assert len(client.search_runs([run.info.experiment_id])) == 1  # not created twice


@pytest.mark.slow
def test_server_killed_mid_training_then_sync_sends_each_step_once(
    mlflow_server: MlflowServer,
    digits: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vizcallbacks")
    writer = MLflowWriter(
        tracking_uri=mlflow_server.uri, experiment_name="fault", spool_dir=tmp_path / "spool"
    )
    loggers: list[Any] = []

    class KillAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == 0:
                for logger in loggers:  # step 0 fully published (a test-only peek) ...
                    logger._queue.drain()
                assert writer.wait(timeout=60), "step 0 was not delivered while the server was up"
                mlflow_server.kill()  # ... then the server dies, before step 1 exists

    x, y = digits
    loggers += [vc.ActivationLogger(x[0], [writer]), vc.FilterLogger([writer])]
    try:
        small_cnn().fit(
            x[:64], y[:64], epochs=3, batch_size=32, verbose=0,
            callbacks=[KillAfterFirstEpoch(), *loggers],
        )  # fmt: skip
    finally:
        mlflow_server.launch()  # same store, same port; it boots while we look at the spool

    warned = sync_warnings(caplog)
    assert len(warned) == 1, warned  # one warning, naming the replay command
    spool_dir = spool_of(warned[0])
    assert spool_dir.parent == (tmp_path / "spool").resolve()
    backup = tmp_path / "spool-before-sync"
    shutil.copytree(spool_dir, backup)

    mlflow_server.wait_until_healthy()
    client = MlflowClient(mlflow_server.uri)
    run_id = only_run(client, "fault").info.run_id
    assert metric_steps(client, run_id, "activation_mean/conv_a") == [0]  # the rest is on disk
    assert client.get_run(run_id).info.status == "RUNNING"

    done = subprocess.run(
        [sys.executable, "-m", "vizcallbacks", "sync", str(spool_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "nothing is left" in done.stderr
    assert_every_step_once(client, run_id, epochs=3)
    assert client.get_run(run_id).info.status == "FINISHED"

    # Running it again sends nothing twice ...
    assert cli(["sync", str(spool_dir)]) == 0
    # ... and neither does a replay that never learned what was delivered (a lost acknowledgement).
    assert cli(["sync", str(backup)]) == 0
    assert_every_step_once(client, run_id, epochs=3)


def test_a_large_histogram_keeps_evenly_spaced_order_statistics() -> None:
    files = HistogramFiles()
    weights = np.random.default_rng(0).permutation(np.arange(3 * MAX_VALUES, dtype=np.float32))
    weights[:5] = np.nan
    files.add("weights/dense/kernel", weights, step=1)
    files.add("weights/dense/bias", np.array([0.5, np.inf]), step=1)
    ((step, name, raw),) = files.take_changed()
    content = json.loads(raw)
    assert (step, name, content["step"]) == (1, "step_000001.json", 1)
    kept = content["values"]["weights/dense/kernel"]
    finite = np.sort(weights[np.isfinite(weights)])
    assert len(kept) == MAX_VALUES and kept == sorted(kept)
    assert kept[0] == finite[0] and kept[-1] == finite[-1]  # the range is kept exactly
    # every kept value is an order statistic: the k-th of 4096 is about the k/4095 quantile
    ranks = np.searchsorted(finite, kept)
    expected = np.linspace(0, finite.size - 1, MAX_VALUES)
    assert np.abs(ranks - expected).max() <= 0.5
    assert content["reduced"] == {"weights/dense/kernel": {"count": weights.size, "non_finite": 5}}
    assert content["values"]["weights/dense/bias"] == [0.5, None]  # small: raw, as before
