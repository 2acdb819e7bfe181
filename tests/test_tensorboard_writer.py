"""TensorBoardWriter without TensorFlow: what it writes reads back as tf.summary's own events."""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.events import read_events
from vizcallbacks.records import File, Histogram, Image, Params, Scalars, Text
from vizcallbacks.tags import PARAMS_TAG
from vizcallbacks.writers.eventfile import masked_crc32c
from vizcallbacks.writers.tensorboard import TensorBoardWriter, histogram_buckets

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
# Hand-picked: a NaN and Infs to drop, a run of equal values, both ends exactly on edges.
HAND = np.array([0.0, 0.0, 0.1, 0.25, 0.5, 0.5, 0.5, 0.99, 1.0, 3.0, np.nan, np.inf, -np.inf])


def event_files(path: Path) -> list[Path]:
    return sorted(path.glob("events.out.tfevents.*"))


def test_every_record_kind_reads_back(tmp_path) -> None:
    writer = TensorBoardWriter(tmp_path)
    gray = RNG.integers(0, 256, (9, 4, 1), dtype=np.uint8)
    writer.write(
        [
            Image("activations/conv", PIXELS),
            Image("filters/conv", gray),
            Scalars({"activation_mean/conv": 0.25, "dead_channels/conv": 3}),
            Histogram("channel_means/conv", HAND),
            Text("activation_table/conv", "| a | é |"),
            Params({"layers": ["conv"], "every": 2}),
            File("anim/evolution.gif", b"GIF89a"),
        ],
        step=7,
    )
    writer.close()
    events = read_events(tmp_path)
    assert set(events) == {
        "activations/conv",
        "filters/conv",
        "activation_mean/conv",
        "dead_channels/conv",
        "channel_means/conv",
        "activation_table/conv",
        PARAMS_TAG,
    }
    np.testing.assert_array_equal(events["activations/conv"][7], PIXELS)
    np.testing.assert_array_equal(events["filters/conv"][7], gray[..., 0])
    assert events["activation_mean/conv"] == {7: 0.25}
    assert events["dead_channels/conv"] == {7: 3.0}
    assert events["activation_table/conv"][7].item().decode() == "| a | é |"
    assert events[PARAMS_TAG][0].item().decode() == (
        '| parameter | value |\n|---|---|\n| layers | ["conv"] |\n| every | 2 |'
    )
    buckets = events["channel_means/conv"][7]
    finite = HAND[np.isfinite(HAND)]
    assert buckets.dtype == np.float64 and buckets.shape == (30, 3)
    assert buckets[:, 2].sum() == finite.size
    # np.histogram over the same edges: its bins are half-open, the last closed, like TF's.
    edges = np.append(buckets[:, 0], buckets[-1, 1])
    np.testing.assert_array_equal(edges, np.linspace(0.0, 3.0, 31))
    expected, _ = np.histogram(finite, bins=np.linspace(0.0, 3.0, 31))
    np.testing.assert_array_equal(buckets[:, 2], expected)
    assert (tmp_path / "files" / "anim" / "evolution.gif").read_bytes() == b"GIF89a"


def test_histogram_edge_cases_follow_tensorflow() -> None:
    assert not histogram_buckets(np.array([np.nan, np.inf])).any()
    assert histogram_buckets(np.array([])).shape == (30, 3)
    constant = histogram_buckets(np.full((2, 3), 4.0))
    assert (constant[:, :2] == 4.0).all() and constant[:, 2].tolist() == [0.0] * 29 + [6.0]


def test_one_file_per_open_and_close_twice(tmp_path) -> None:
    writer = TensorBoardWriter(tmp_path)
    writer.write([Scalars({"a": 1.0})], 1)
    writer.write([Image("img", PIXELS)], 2)
    writer.flush()
    assert len(event_files(tmp_path)) == 1
    writer.close()
    writer.close()
    assert len(event_files(tmp_path)) == 1
    writer.write([Scalars({"a": 3.0})], 3)  # a second fit
    writer.close()
    assert len(event_files(tmp_path)) == 2
    events = read_events(tmp_path)
    assert events["a"] == {1: 1.0, 3: 3.0} and list(events["img"]) == [2]


def test_view_command_said_once(tmp_path, monkeypatch) -> None:
    said: list[str] = []
    monkeypatch.setattr("vizcallbacks.writers.tensorboard.say", said.append)
    writer = TensorBoardWriter(tmp_path)
    writer.write([Scalars({"a": 1.0})], 0)
    writer.close()
    assert said == []
    for step in (1, 2):
        writer.write([Image("img", PIXELS)], step)
        writer.close()
    assert said == [f"vizcallbacks: view the images with `{writer.view_command()}`"]


def test_threads_write_at_once(tmp_path) -> None:
    writer = TensorBoardWriter(tmp_path)

    def work(n: int) -> None:
        for step in range(20):
            writer.write([Scalars({f"t{n}": float(step)}), Image(f"img{n}", PIXELS)], step)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    events = read_events(tmp_path)
    assert all(sorted(events[f"t{n}"]) == list(range(20)) for n in range(4))
    assert len(event_files(tmp_path)) == 1


def test_file_never_leaves_log_dir(tmp_path) -> None:
    with pytest.raises(ValueError, match="would leave the log directory"):
        TensorBoardWriter(tmp_path / "run").write([File("../../evil", b"x")], 0)


class FullDisk:
    """An event file whose disk fills up when ``full`` is set: writes fail half-way."""

    full = False

    def __init__(self, path: Path, mode: str) -> None:
        self.file = open(path, mode)  # noqa: SIM115

    def write(self, data: bytes) -> int:
        if FullDisk.full:
            self.file.write(data[: len(data) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        self.file.close()


@pytest.fixture
def disk(monkeypatch) -> type[FullDisk]:
    monkeypatch.setattr("vizcallbacks.writers.eventfile.open", FullDisk, raising=False)
    monkeypatch.setattr(FullDisk, "full", False)
    return FullDisk


def test_full_disk_raises_from_write_and_keeps_the_file_whole(tmp_path, disk) -> None:
    writer = TensorBoardWriter(tmp_path)
    writer.write([Scalars({"a": 1.0})], 0)
    disk.full = True
    with pytest.raises(OSError, match="No space left"):
        writer.write([Image("img", PIXELS), Scalars({"a": 2.0})], 1)
    disk.full = False
    writer.write([Scalars({"a": 3.0})], 2)  # in a new file: the first was cut back and closed
    writer.close()
    assert read_events(tmp_path)["a"] == {0: 1.0, 2: 3.0}
    assert len(event_files(tmp_path)) == 2


def test_first_write_on_full_disk_leaves_no_empty_file(tmp_path, disk) -> None:
    disk.full = True
    with pytest.raises(OSError, match="No space left"):
        TensorBoardWriter(tmp_path).write([Scalars({"a": 1.0})], 0)
    assert event_files(tmp_path) == []


def test_crc_matches_tensorboard_reference() -> None:
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as reference

    for size in (0, 3, 4, 5, 4095, 4096, 4097, 70_001, 300_000):
        data = RNG.integers(0, 256, size, dtype=np.uint8).tobytes()
        assert masked_crc32c(data) == reference(data), size


def test_import_loads_neither_tensorflow_nor_keras(tmp_path) -> None:
    code = (
        "import sys, numpy as np\n"
        "import vizcallbacks.writers.tensorboard as t\n"
        "from vizcallbacks.records import Image, Scalars, Histogram\n"
        f"w = t.TensorBoardWriter({str(tmp_path)!r})\n"
        "w.write([Image('i', np.zeros((4, 4, 3), np.uint8)), Scalars({'s': 1.0}),"
        " Histogram('h', np.arange(5.0))], 0)\n"
        "w.close()\n"
        "loaded = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=120)
    assert len(event_files(tmp_path)) == 1


def test_same_values_as_tf_summary(tmp_path) -> None:
    import tensorflow as tf

    values = RNG.normal(size=64)
    ours, theirs = tmp_path / "ours", tmp_path / "tf"
    writer = TensorBoardWriter(ours)
    writer.write([Image("img", PIXELS), Scalars({"s": 0.1}), Histogram("h", values)], 5)
    writer.close()
    with tf.summary.create_file_writer(str(theirs)).as_default():
        tf.summary.image("img", PIXELS[None], step=5)
        tf.summary.scalar("s", 0.1, step=5)
        tf.summary.histogram("h", values, step=5)
        tf.summary.flush()
    a, b = read_events(ours), read_events(theirs)
    assert set(a) == set(b) == {"img", "s", "h"}
    np.testing.assert_array_equal(a["img"][5], b["img"][5])
    assert a["s"][5] == b["s"][5]
    assert a["h"][5].dtype == b["h"][5].dtype and a["h"][5].shape == b["h"][5].shape
    np.testing.assert_allclose(a["h"][5], b["h"][5], rtol=1e-12, atol=1e-15)


def test_tensorboard_data_provider_reads_it(tmp_path) -> None:
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea

    writer = TensorBoardWriter(tmp_path)
    writer.write([Image("img", PIXELS), Scalars({"s": 2.5}), Histogram("h", HAND)], 1)
    writer.write([Text("t", "hello")], 2)
    writer.close()
    accumulator = pea.EventAccumulator(str(tmp_path))
    accumulator.Reload()
    tags = accumulator.Tags()["tensors"]
    assert sorted(tags) == ["h", "img", "s", "t"]
    plugins = {tag: accumulator.SummaryMetadata(tag).plugin_data.plugin_name for tag in tags}
    assert plugins == {"h": "histograms", "img": "images", "s": "scalars", "t": "text"}
    assert [event.step for event in accumulator.Tensors("t")] == [2]


@pytest.mark.parametrize("value", [0.1, -3.0, 1e30, float("nan"), float("inf")])
def test_scalar_events_are_the_protos_tensorboard_builds(value: float) -> None:
    """Built by hand for speed: the very proto ``make_tensor_proto`` and TensorBoard's scalar
    metadata give, so every reader sees what a ``tf.summary.scalar`` would write."""
    from tensorboard.plugins.scalar import metadata
    from tensorboard.util.tensor_util import make_tensor_proto

    ours = TensorBoardWriter._scalar("activation_mean/conv", value)
    assert ours.tensor == make_tensor_proto(np.float32(value))
    assert ours.metadata == metadata.create_summary_metadata(display_name=None, description="")
