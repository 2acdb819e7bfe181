"""One run of a sweep, logging to a shared MLflow server and to its own TensorBoard directory.

``python -m tests.sweep_run URI EXPERIMENT RUN_NAME WORK_DIR [EPOCHS [clock]]``. After its second
epoch it touches ``WORK_DIR/ready`` and trains on once ``WORK_DIR/../go`` exists (the test has
killed the server), and after its fourth waits for ``WORK_DIR/../back`` (the server answers
again). The TensorBoard copy is what the test compares the server's content with. Prints
``TRAINED <fit seconds> <mean seconds from a step's end to its delivery (with clock)>``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import vizcallbacks as vc
from tests import models

__all__ = ["main"]


class Pause(keras.callbacks.Callback):
    """Says ``ready`` after epoch 1 and waits for ``go`` (the server goes down meanwhile), then
    after epoch 3 waits for ``back`` (the server answers again), so that the run ends with it up."""

    def __init__(self, work_dir: Path) -> None:
        super().__init__()
        self.work_dir = work_dir

    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        if epoch == 1:
            (self.work_dir / "ready").touch()
        signal = {1: "go", 3: "back"}.get(epoch)
        while signal and not (self.work_dir.parent / signal).exists():
            time.sleep(0.1)


class DeliveryClock(keras.callbacks.Callback):
    """After the loggers' ``on_epoch_end``: how long until the step is on the server."""

    def __init__(self, writer: vc.MLflowWriter) -> None:
        super().__init__()
        self.writer = writer
        self.seconds: list[float] = []

    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        started = time.perf_counter()
        self.writer.wait(timeout=240)
        self.seconds.append(time.perf_counter() - started)


def main(
    uri: str, experiment: str, run_name: str, work_dir: str, epochs: int = 5, clock: bool = False
) -> None:
    work = Path(work_dir)
    seed = int(run_name.rsplit("-", 1)[-1])
    keras.utils.set_random_seed(seed)
    keras.config.disable_interactive_logging()
    rng = np.random.default_rng(seed)
    x = rng.random((64, 16, 16, 1)).astype("float32")
    y = np.arange(64) % 10
    mlflow_writer = vc.MLflowWriter(
        uri,
        experiment_name=experiment,
        run_name=run_name,
        spool_dir=work / "spool",
        retry_interval=1,
        close_timeout=240,
    )
    writers = [mlflow_writer, vc.TensorBoardWriter(work / "tensorboard")]
    loggers = [
        vc.ActivationLogger(x[0], writers, layers=["conv_a", "conv_b"]),
        vc.FilterLogger(writers),
    ]
    model = models.compiled(models.functional())
    started = time.perf_counter()
    timer = DeliveryClock(mlflow_writer)  # blocks each epoch until delivered: benchmark only
    callbacks = [Pause(work), *loggers, *([timer] if clock else [])]
    model.fit(x, y, epochs=epochs, batch_size=32, callbacks=callbacks)
    delivery = sum(timer.seconds) / max(len(timer.seconds), 1)
    print("TRAINED", f"{time.perf_counter() - started:.3f}", f"{delivery:.4f}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5], *(int(a) for a in sys.argv[5:6]), clock="clock" in sys.argv[6:])
