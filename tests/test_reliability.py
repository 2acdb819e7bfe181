"""Nothing lost, nothing stuck, on the training side: names TensorFlow refuses, probe names that
collide, loggers that would overwrite each other, a publishing backlog, resumed runs, full disks."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

import vizcallbacks as vc
from tests import models
from tests.events import read_events, tag_steps
from vizcallbacks.callbacks.fanout import FanOut

ROOT = Path(__file__).resolve().parents[1]


def test_layer_names_tensorflow_refuses_at_the_root(digits, tmp_path: Path) -> None:
    """Plain fit accepts ``>c1`` and ``-c1``; our traced replay must too."""
    x, y = digits
    inputs = keras.Input((16, 16, 1))
    h = layers.Conv2D(4, 3, activation="relu", name=">c1")(inputs)
    h = layers.Conv2D(4, 3, activation="relu", name="-c1")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    model = models.compiled(keras.Model(inputs, layers.Dense(10, activation="softmax")(h)))
    writers = [vc.TensorBoardWriter(tmp_path)]
    callbacks = [vc.ActivationLogger(x[0], writers), vc.GradCAMLogger(x[0], writers)]
    model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=callbacks)
    events = read_events(tmp_path)
    assert sorted(events["activations/_c1"]) == [0, 1]
    assert sorted(events["activations/-c1"]) == [0, 1]
    assert sorted(events["gradcam/-c1"]) == [0, 1]


def test_probe_names_that_differ_only_in_unsafe_characters_stay_apart(
    digits, tmp_path: Path
) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    logger = vc.ActivationLogger(x[:2], writers, layers=["conv_a"], probe_names=["cat?", "cat!"])
    models.compiled(models.functional()).fit(
        x[:32], y[:32], epochs=1, verbose=0, callbacks=[logger]
    )
    events = read_events(tmp_path)  # raises if a (tag, step) was written twice
    grids = {t for t in events if t.startswith("activations/")}
    assert grids == {"activations/conv_a/cat_", "activations/conv_a/cat__2"}
    first, second = (events[t][1] for t in sorted(grids))
    assert not np.array_equal(first, second)  # two different probes, two different pictures


def test_two_loggers_that_would_overwrite_each_other_are_refused_before_training(
    digits, tmp_path: Path
) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    model = models.compiled(models.functional())
    before = [w.copy() for w in model.get_weights()]
    twins = [vc.ActivationLogger(x[0], writers), vc.ActivationLogger(x[1], writers)]
    with pytest.raises(ValueError, match="ActivationLogger and ActivationLogger would both write"):
        model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=twins)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    for logger in twins:
        logger.finish()
    # Different layers on one writer are fine, and so are the same layers on two writers.
    apart = [
        vc.ActivationLogger(x[0], writers, layers=["conv_a"]),
        vc.ActivationLogger(x[1], writers, layers=["conv_b"]),
        vc.ActivationLogger(x[1], [vc.TensorBoardWriter(tmp_path / "other")], layers=["conv_a"]),
    ]
    model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=apart)
    assert {"activations/conv_a", "activations/conv_b"} <= set(read_events(tmp_path))


def test_claims_of_loggers_dropped_without_train_end_do_not_block_new_ones(
    digits, tmp_path: Path
) -> None:
    """A fit that raised never reaches ``on_train_end``: once its loggers are gone, what they
    claimed on a writer is free again (claims were once kept by ``id()``, so a new writer that
    happened to get a dropped one's address was refused)."""
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    model = models.compiled(models.functional())
    twins = [vc.ActivationLogger(x[0], writers), vc.ActivationLogger(x[1], writers)]
    with pytest.raises(ValueError, match="would both write"):
        model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=twins)
    claimed = twins[0].claims()
    del twins
    gc.collect()
    fanout = FanOut(writers)
    fanout.open()
    assert fanout.claim("ActivationLogger", claimed, set()) == set()  # not refused
    fanout.release()


def test_publishing_backlog_skips_middle_steps_never_the_last(
    digits, tmp_path: Path, monkeypatch, caplog
) -> None:
    from vizcallbacks.callbacks import base

    monkeypatch.setattr(base, "BACKLOG_SECONDS", 0.0)  # keep one waiting step at most
    x, y = digits
    # 48 probes x 8 layers of grids a step: drawing is far slower than an epoch of 32 images.
    logger = vc.ActivationLogger(x[:48], [vc.TensorBoardWriter(tmp_path)])
    with caplog.at_level("WARNING", "vizcallbacks"):
        models.compiled(models.functional()).fit(
            x[:32], y[:32], epochs=8, batch_size=32, verbose=0, callbacks=[logger]
        )
    steps = sorted(read_events(tmp_path)["activation_mean/conv_a"])
    assert logger.skipped_steps, "publishing never fell behind: the test did not test anything"
    assert steps[-1] == 8 and 0 in steps  # the last step always, the first was already running
    assert sorted(steps + logger.skipped_steps) == list(range(9))
    assert caplog.text.count("fell behind training") == 1
    assert "every_n_epochs" in caplog.text and "max_channels" in caplog.text


def test_resume_with_new_callbacks_never_logs_a_step_twice(digits, tmp_path: Path) -> None:
    x, y = digits
    model = models.compiled(models.functional())

    def loggers() -> list[keras.callbacks.Callback]:
        writers = [vc.TensorBoardWriter(tmp_path)]
        return [vc.ActivationLogger(x[0], writers), vc.FilterLogger(writers)]

    model.fit(x[:32], y[:32], epochs=2, verbose=0, callbacks=loggers())
    model.fit(x[:32], y[:32], initial_epoch=2, epochs=4, verbose=0, callbacks=loggers())
    events = read_events(tmp_path)  # raises on a (tag, step) written twice
    assert sorted(events["activations/conv_a"]) == [0, 1, 2, 3, 4]
    assert sorted(events["filters/conv_b"]) == [0, 1, 2, 3, 4]
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 2  # one file per fit


FULL_DISK = """
import resource, signal, sys
import numpy as np
sys.path.insert(0, {root!r})
from tests import models
from sklearn.datasets import load_digits
import vizcallbacks as vc

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
digits = load_digits()
x = (digits.images / 16.0).astype("float32").repeat(2, 1).repeat(2, 2)[..., None][:64]
y = digits.target[:64]
model = models.compiled(models.functional())
writers = [vc.TensorBoardWriter({log_dir!r})]
callbacks = [vc.ActivationLogger(x[:8], writers), vc.FilterLogger(writers)]
resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, resource.RLIM_INFINITY))
history = model.fit(x, y, epochs=3, verbose=0, callbacks=callbacks)
print("epochs trained:", len(history.history["loss"]))
"""


def test_full_disk_warns_once_per_writer_and_leaves_no_empty_files(tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    script = FULL_DISK.format(root=str(ROOT), log_dir=str(log_dir))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "epochs trained: 3" in done.stdout
    assert done.stderr.count("TensorBoardWriter.write failed") == 1, done.stderr[-3000:]
    written = [p for p in log_dir.rglob("*") if p.is_file()]
    assert written, "nothing was written before the disk filled"
    assert [p for p in written if p.stat().st_size == 0] == []
    assert [p for p in written if p.suffix == ".partial"] == []
    assert tag_steps(read_events(log_dir))  # what was written is whole and readable
