"""``python -m vizcallbacks compare``: two real runs (a tiny CNN with valid and with same padding,
2 epochs) logged by ``MLflowWriter`` to the local SQLite store and to a real ``mlflow server``,
read back and drawn side by side. The grids in the picture are checked pixel for pixel against
the artifacts downloaded with a plain ``MlflowClient``.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from keras import layers
from mlflow import MlflowClient
from PIL import Image

import vizcallbacks as vc
from tests.mlflow_server import IMAGE_FILE, MlflowServer
from vizcallbacks.__main__ import main as cli
from vizcallbacks.compare import compare_runs, compare_sweep
from vizcallbacks.render.compare import RUN_COLORS, run_comparison, run_layer_table
from vizcallbacks.sources.mlflow_runs import RunLookupError, connect, open_run
from vizcallbacks.writers.mlflow import MLflowWriter

EPOCHS = 2
KEY = "activations/conv_a"
pytestmark = pytest.mark.usefixtures("no_mlflow_env")


def tiny_cnn(padding: str) -> Any:
    inputs = keras.Input((16, 16, 1))
    x = layers.Conv2D(4, 3, padding=padding, activation="relu", name="conv_a")(inputs)
    x = layers.MaxPooling2D(name="pool_a")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, layers.Dense(10, activation="softmax", name="probs")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def log_runs(digits: Any, uri: str, experiment: str, spool: Path) -> dict[str, str]:
    """Train the valid and the same model for EPOCHS epochs; return {padding: run id}."""
    x, y = digits
    ids = {}
    for padding in ("valid", "same"):
        keras.utils.set_random_seed(0)
        writer = MLflowWriter(
            tracking_uri=uri, experiment_name=experiment, run_name=padding, spool_dir=spool
        )
        tiny_cnn(padding).fit(
            x[:64],
            y[:64],
            epochs=EPOCHS,
            batch_size=32,
            verbose=0,
            callbacks=[vc.ActivationLogger(x[0], [writer])],
        )
        assert writer.wait(timeout=120)
        writer.close()
        client = MlflowClient(uri)
        found = client.get_experiment_by_name(experiment)
        assert found is not None
        (run,) = client.search_runs(
            [found.experiment_id], filter_string=f"attributes.run_name = '{padding}'"
        )
        ids[padding] = run.info.run_id
    return ids


def downloaded(uri: str, run_id: str, key: str, step: int) -> np.ndarray:
    """The image ``key`` at ``step``, found and downloaded without vizcallbacks' code."""
    client = MlflowClient(uri)
    paths = [
        info.path
        for info in client.list_artifacts(run_id, "images")
        if (m := IMAGE_FILE.match(info.path))
        and m["key"].replace("~", "/") == key
        and int(m["step"]) == step
    ]
    assert len(paths) == 1, paths
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, paths[0], tmp)
        with Image.open(local) as picture:
            return np.asarray(picture.convert("RGB"))


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        return np.asarray(picture.convert("RGB"))


def upscaled(image: np.ndarray, k: int) -> np.ndarray:
    return image.repeat(k, axis=0).repeat(k, axis=1)


def has_color(image: np.ndarray, color: tuple[int, int, int], tolerance: int = 8) -> bool:
    return bool((np.abs(image.astype(int) - color).max(axis=-1) <= tolerance).any())


# The render function alone ---------------------------------------------------------------------
def test_render_places_both_grids_at_scale_and_top_aligned() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (26, 38, 3), dtype=np.uint8)
    curves = np.full((50, 200, 3), 7, dtype=np.uint8)
    out = run_comparison(a, b, ("A", "B"), title="k at step 1", curves=curves, scale=3)
    assert out.image.dtype == np.uint8 and out.image.ndim == 3
    np.testing.assert_array_equal(out.crop(out.left), upscaled(a, 3))
    np.testing.assert_array_equal(out.crop(out.right), upscaled(b, 3))
    assert out.left[0] == out.right[0]  # same top: a smaller map stays visibly smaller
    assert out.left[1] + out.left[3] < out.right[1]  # A left of B, with a gap
    assert out.curves is not None
    np.testing.assert_array_equal(out.crop(out.curves), curves)
    assert out.curves[0] >= out.right[0] + out.right[2]  # below the grids
    assert out.image.shape[1] == 2 * (3 * 38 + 16)  # two equal halves
    half = out.image.shape[1] // 2
    assert out.left[1] + out.left[3] <= half <= out.right[1]
    header = out.image[: out.left[0]]
    assert has_color(header, RUN_COLORS[0], 0) and has_color(header, RUN_COLORS[1], 0)
    with pytest.raises(ValueError, match="scale"):
        run_comparison(a, b, scale=0)
    with pytest.raises(ValueError, match="uint8"):
        run_comparison(a.astype(np.float32), b)


# Local SQLite store ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sqlite_runs(digits: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    root = tmp_path_factory.mktemp("sqlite-store")
    uri = f"sqlite:///{root}/mlflow.db"
    return uri, log_runs(digits, uri, "compare-sqlite", root / "spool")


def test_sqlite_compare_draws_both_runs_at_the_step(
    sqlite_runs: tuple[str, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, ids = sqlite_runs
    out = tmp_path / "cmp" / "valid_vs_same.png"
    status = cli(
        ["compare", ids["valid"], ids["same"], "--key", KEY, "--step", "1",
         "--tracking-uri", uri, "--output", str(out), "--scale", "2"]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    picture = read_png(out)

    grid_a = downloaded(uri, ids["valid"], KEY, 1)
    grid_b = downloaded(uri, ids["same"], KEY, 1)
    # valid 3x3 convolution on 16x16: 14x14 maps (drawn 3x: 85 px), same: 16x16 (2x: 65 px)
    assert grid_a.shape[:2] == (85, 85) and grid_b.shape[:2] == (65, 65)
    result = compare_runs(connect(uri), ids["valid"], ids["same"], KEY, 1, scale=2)
    np.testing.assert_array_equal(picture, result.picture.image)
    np.testing.assert_array_equal(result.picture.crop(result.picture.left), upscaled(grid_a, 2))
    np.testing.assert_array_equal(result.picture.crop(result.picture.right), upscaled(grid_b, 2))
    # the left half of the picture holds A's grid, the right half B's
    left, right = result.picture.left, result.picture.right
    assert left[1] + left[3] <= picture.shape[1] // 2 <= right[1]

    # the curves: activation_mean/conv_a of both runs, one point per logged step, in run colours
    assert result.metric == "activation_mean/conv_a"
    client = MlflowClient(uri)
    for run_id, (steps, values) in zip((ids["valid"], ids["same"]), result.curves, strict=True):
        history = sorted(
            (m.step, m.value) for m in client.get_metric_history(run_id, result.metric)
        )
        assert steps.tolist() == [s for s, _ in history] == list(range(EPOCHS + 1))
        np.testing.assert_allclose(values, [v for _, v in history])
    assert result.picture.curves is not None
    plot = result.picture.crop(result.picture.curves)
    assert has_color(plot, RUN_COLORS[0]) and has_color(plot, RUN_COLORS[1])

    printed = capsys.readouterr().out
    assert f"Wrote {out}" in printed and "activation_mean/conv_a" in printed


def test_sqlite_defaults_pick_the_last_common_step_and_an_activation_key(
    sqlite_runs: tuple[str, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri, ids = sqlite_runs
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # no --tracking-uri: MLflow's own setting
    assert cli(["compare", "valid", "same"]) == 0  # run names work when they are unique
    (written,) = tmp_path.glob("compare-*.png")
    assert written.name == f"compare-{ids['valid'][:8]}-{ids['same'][:8]}-step{EPOCHS}.png"
    result = compare_runs(connect(uri), ids["valid"], ids["same"])
    assert (result.key, result.step) == (KEY, EPOCHS)
    np.testing.assert_array_equal(read_png(written), result.picture.image)
    np.testing.assert_array_equal(result.grids[0], downloaded(uri, ids["valid"], KEY, EPOCHS))
    # training changed the maps: step 0 and the last step differ
    assert not np.array_equal(
        downloaded(uri, ids["valid"], KEY, 0), downloaded(uri, ids["valid"], KEY, EPOCHS)
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--key", "activations/nope"], r"no image 'activations/nope'.*activations/conv_a.*--key"),
        (["--key", "activations"], r"images under activations/.*activations/conv_a.*--key"),
        (
            ["--key", KEY, "--step", "9"],
            rf"no '{KEY}' image at step 9; its steps are 0\.\.2.*--step",
        ),
        (
            ["--run-a", "0123456789abcdef"],
            r"No run with id or name '0123456789abcdef'.*Latest runs",
        ),
    ],
    ids=["unknown-key", "key-prefix", "unknown-step", "unknown-run"],
)
def test_sqlite_bad_input_names_what_exists(
    sqlite_runs: tuple[str, dict],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    expected: str,
) -> None:
    uri, ids = sqlite_runs
    run_a = ids["valid"]
    if args[0] == "--run-a":
        run_a, args = args[1], []
    out = tmp_path / "x.png"
    status = cli(
        ["compare", run_a, ids["same"], "--tracking-uri", uri, "--output", str(out), *args]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert re.search(expected, err, re.S), err
    assert "Traceback" not in err
    assert not out.exists()


def test_missing_sqlite_store_is_reported_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "nothing.db"
    assert cli(["compare", "a", "b", "--tracking-uri", f"sqlite:///{store}"]) == 2
    assert "There is no MLflow store at" in capsys.readouterr().err
    assert not store.exists()


def test_unknown_run_exits_2_without_traceback_as_a_process(
    sqlite_runs: tuple[str, dict], tmp_path: Path
) -> None:
    uri, ids = sqlite_runs
    done = subprocess.run(
        [sys.executable, "-m", "vizcallbacks", "compare", "deadbeef", ids["same"],
         "--tracking-uri", uri, "--output", str(tmp_path / "x.png")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "No run with id or name 'deadbeef'" in done.stderr
    assert ids["valid"] in done.stderr  # the latest runs are listed, to pick from
    assert "Traceback" not in done.stderr


# A real tracking server ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server_runs(
    digits: Any, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict]:
    spool = tmp_path_factory.mktemp("server-spool")
    return mlflow_server.uri, log_runs(digits, mlflow_server.uri, "compare-server", spool)


def test_server_compare_draws_both_runs(
    server_runs: tuple[str, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, ids = server_runs
    out = tmp_path / "server.png"
    status = cli(
        ["compare", ids["valid"], ids["same"], "--key", KEY, "--step", "0",
         "--tracking-uri", uri, "--output", str(out), "--scale", "1"]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    picture = read_png(out)
    result = compare_runs(connect(uri), ids["valid"], ids["same"], KEY, 0, scale=1)
    np.testing.assert_array_equal(picture, result.picture.image)
    np.testing.assert_array_equal(
        result.picture.crop(result.picture.left), downloaded(uri, ids["valid"], KEY, 0)
    )
    np.testing.assert_array_equal(
        result.picture.crop(result.picture.right), downloaded(uri, ids["same"], KEY, 0)
    )
    steps, _ = result.curves[1]
    assert steps.tolist() == list(range(EPOCHS + 1))


def test_server_lookup_errors_name_keys_and_steps(server_runs: tuple[str, dict]) -> None:
    uri, ids = server_runs
    run = open_run(connect(uri), ids["same"])
    assert run.name == "same" and set(run.images) >= {KEY, "activations/pool_a", "probe/input"}
    with pytest.raises(RunLookupError, match=r"no image 'filters/conv_a'.*activations/pool_a"):
        run.steps("filters/conv_a")
    with pytest.raises(RunLookupError, match=r"at step 5; its steps are 0\.\.2"):
        run.image(KEY, 5)
    with pytest.raises(RunLookupError, match=r"No run with id or name 'missing'"):
        open_run(connect(uri), "missing")


# The LeNet-5 experiment: valid versus same, end to end ----------------------------------------
@pytest.mark.slow
def test_lenet5_both_paddings_draws_the_comparison(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from experiments import lenet5

    monkeypatch.chdir(tmp_path)  # mlflow.db and the spool land here
    lenet5.main(["--padding", "both", "--epochs", "1", "--max-samples", "64"])
    printed = capsys.readouterr().out
    picture = tmp_path / "logs" / "lenet5" / "valid_vs_same.png"
    assert picture.is_file(), printed
    command = re.search(r"python -m vizcallbacks compare (\S+) (\S+) --key (\S+)", printed)
    assert command, printed
    valid, same, key = command.groups()
    assert key == "activations/conv1/bag_2000"

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = compare_runs(connect(uri), valid, same, key)
    assert [r.name for r in result.runs] == ["lenet5-valid", "lenet5-same"]
    assert result.step == 1
    np.testing.assert_array_equal(read_png(picture), result.picture.image)
    # conv1 is 6 channels, 3 tiles by 2, drawn 2x: 24x24 maps (valid) versus 28x28 (same)
    assert result.grids[0].shape[:2] == (2 * 48 + 1, 3 * 48 + 2)
    assert result.grids[1].shape[:2] == (2 * 56 + 1, 3 * 56 + 2)
    assert (tmp_path / "logs" / "lenet5" / "valid").is_dir()
    assert (tmp_path / "logs" / "lenet5" / "same").is_dir()


def test_run_layer_table_puts_a_row_per_run_and_a_column_per_layer() -> None:
    # run i, layer j: a solid cell of its own colour (no grey: the text is grey), layer 0's 4x4
    # pixels, layer 1's 3x5
    level = {(i, j): (10 + 20 * (3 * i + j), 200, 60) for i in range(3) for j in range(2)}
    cells = [
        [np.full((4, 4, 3), level[i, 0], np.uint8), np.full((3, 5, 3), level[i, 1], np.uint8)]
        for i in range(3)
    ]
    cells[2][1] = None  # run 2 never logged layer 1: a blank cell
    table = run_layer_table(cells, ["a", "b", "c"], ["conv", "pool"], scale=2)
    corners = {}
    for (i, j), value in level.items():
        found = np.argwhere((table == value).all(axis=-1))
        if (i, j) == (2, 1):
            assert len(found) == 0
            continue
        assert len(found) == (64 if j == 0 else 60), (i, j)  # h * w * scale**2 pixels
        corners[i, j] = tuple(found.min(axis=0))
    assert corners[0, 0][0] == corners[0, 1][0] < corners[1, 0][0] < corners[2, 0][0]  # rows
    assert corners[0, 0][1] == corners[1, 0][1] < corners[0, 1][1] == corners[1, 1][1]  # cols
    for i in range(3):  # each row's colour line, the colour of its curve
        assert has_color(table[:, :120], RUN_COLORS[i], 0)


def test_sqlite_experiment_compares_every_run(
    sqlite_runs: tuple[str, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, ids = sqlite_runs
    out = tmp_path / "sweep.png"
    argv = ["compare", "--experiment", "compare-sqlite", "--layers", "conv_a,pool_a"]
    assert cli([*argv, "--tracking-uri", uri, "--output", str(out)]) == 0
    result = compare_sweep(connect(uri), [ids["valid"], ids["same"]], ["conv_a", "pool_a"])
    np.testing.assert_array_equal(read_png(out), result.image)
    assert result.keys == ("activations/conv_a", "activations/pool_a")
    assert (result.step, result.metric) == (EPOCHS, "activation_mean/conv_a")
    assert [run.run_id for run in result.runs] == [ids["valid"], ids["same"]]  # oldest first
    client = MlflowClient(uri)
    for run_id, (steps, values) in zip(ids.values(), result.curves, strict=True):
        history = sorted(
            (m.step, m.value) for m in client.get_metric_history(run_id, result.metric)
        )
        assert steps.tolist() == [s for s, _ in history] == list(range(EPOCHS + 1))
        np.testing.assert_allclose(values, [v for _, v in history])
    printed = capsys.readouterr().out
    assert "valid (" in printed and "same (" in printed and f"step {EPOCHS}" in printed
    assert cli(["compare", "--experiment", "no-such", "--tracking-uri", uri]) == 2
    assert cli(["compare", ids["valid"], "--tracking-uri", uri]) == 2  # one run: nothing to compare


def test_sqlite_experiment_report_opens_on_every_run(
    sqlite_runs: tuple[str, dict], tmp_path: Path
) -> None:
    """``report --experiment``: both runs in one page, opened side by side, each picture its own
    run's (both runs store it at the same artifact path, so the two must not be taken as one)."""
    from tests.test_dashboard_model import report_data

    uri, ids = sqlite_runs
    out = tmp_path / "sweep.html"
    argv = ["report", "--experiment", "compare-sqlite", "--tracking-uri", uri, "-o", str(out)]
    assert cli(argv) == 0
    data = report_data(out.read_text("utf-8"))
    labels = [f"{name} ({run_id[:8]})" for name, run_id in ids.items()]  # valid, then same
    assert [run["name"] for run in data["runs"]] == data["shown"] == labels
    for run, run_id in zip(data["runs"], ids.values(), strict=True):
        (conv,) = [layer for layer in run["layers"] if layer["name"] == "conv_a"]
        (series,) = [s for s in conv["images"] if s["kind"] == "activations"]
        assert series["steps"] == list(range(EPOCHS + 1))
        for step, short in zip(series["steps"], series["values"], strict=True):
            png = data["images"][short].split(",", 1)[1]
            shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB"))
            np.testing.assert_array_equal(shown, downloaded(uri, run_id, KEY, step))
    valid, same = (run["layers"][0]["images"][0]["values"] for run in data["runs"])
    assert set(valid).isdisjoint(same)  # valid and same padding: no picture in common
    # The same page from the run ids; one source alone opens on its run.
    again = tmp_path / "again.html"
    assert cli(["report", *ids.values(), "--tracking-uri", uri, "-o", str(again)]) == 0
    assert report_data(again.read_text("utf-8"))["runs"] == data["runs"]
    assert cli(["report", ids["same"], "--tracking-uri", uri, "-o", str(again)]) == 0
    assert report_data(again.read_text("utf-8"))["shown"] == labels[1:]
    assert cli(["report", "--experiment", "no-such", "--tracking-uri", uri, "-o", str(out)]) == 2
    assert cli(["report", "-o", str(out)]) == 2  # nothing to report
