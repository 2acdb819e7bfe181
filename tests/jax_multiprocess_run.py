"""One of 2 JAX processes training under ``keras.distribution.DataParallel``; run as a subprocess.

``python -m tests.jax_multiprocess_run COORDINATOR PROCESS_ID LOG_DIR [DIE_AT_EPOCH]``: process
``PROCESS_ID`` of 2, coordinator ``127.0.0.1:PORT``, gloo CPU collectives, each process its half
of the data (``auto_shard_dataset=False``), with the activation, Grad-CAM, attribution, gradient
and representation loggers. Process 0 then replays the same loggers in one process on one device
over the weights the model had at each step (``LOG_DIR-one-process``): what the test compares.
With ``DIE_AT_EPOCH`` process 1 exits at once at the start of that epoch, as a crashed worker
would (the ActivationLogger alone then). Prints one JSON line with what the test compares.
"""

from __future__ import annotations

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax
import keras
import numpy as np

jax.config.update("jax_cpu_collectives_implementation", "gloo")  # before any backend starts

__all__ = ["main"]

LAYERS = ["conv_a", "conv_b"]
EPOCHS = 2


class Crash(keras.callbacks.Callback):
    """Process 1 dies without a word at the start of epoch ``epoch``."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        if epoch == self.epoch and jax.process_index() == 1:
            os._exit(17)


class WeightsEachStep(keras.callbacks.Callback):
    """The model's weights at train begin and at each epoch's end: the steps the loggers log."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[list[np.ndarray]] = []

    def on_train_begin(self, logs: object = None) -> None:
        self.steps.append(self.model.get_weights())

    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        self.steps.append(self.model.get_weights())


def loggers(x: np.ndarray, y: np.ndarray, writer: object, every: bool) -> list:
    """The loggers under test (``every``: all kinds; else the ActivationLogger alone)."""
    import vizcallbacks as vc

    found = [vc.ActivationLogger(x[0], [writer], layers=LAYERS)]
    if every:
        found += [
            vc.GradCAMLogger(x[:2], [writer], layer="conv_b"),
            vc.AttributionLogger(x[:2], [writer], ["saliency"], faithfulness=("deletion",)),
            vc.GradientLogger((x[:16], y[:16]), [writer], layers=LAYERS),
            vc.RepresentationLogger(x[:16], [writer], layers=LAYERS),
        ]
    return found


def replay(steps: list[list[np.ndarray]], x: np.ndarray, y: np.ndarray, log_dir: str) -> None:
    """The same loggers in one process on one device, stepped through ``steps``' weights as
    ``fit`` steps them (train begin, each epoch's end, train end)."""
    import vizcallbacks as vc
    from tests import models

    model = models.compiled(models.functional())
    writer = vc.TensorBoardWriter(log_dir)
    callbacks = keras.callbacks.CallbackList(
        loggers(x, y, writer, every=True), model=model, epochs=EPOCHS, verbose=0
    )
    model.set_weights(steps[0])
    callbacks.on_train_begin()
    for epoch, weights in enumerate(steps[1:]):
        callbacks.on_epoch_begin(epoch)
        model.set_weights(weights)
        callbacks.on_epoch_end(epoch, {})
    callbacks.on_train_end()


def main(coordinator: str, process_id: str, log_dir: str, die_at_epoch: str = "-1") -> None:
    keras.distribution.initialize(coordinator, num_processes=2, process_id=int(process_id))
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    )

    import vizcallbacks as vc
    from tests import models

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((64, 16, 16, 1)).astype("float32")
    y = np.arange(64) % 10
    half = slice(32 * int(process_id), 32 * (int(process_id) + 1))
    model = models.compiled(models.functional())
    writer = vc.TensorBoardWriter(log_dir)
    recorder = WeightsEachStep()
    callbacks = [Crash(int(die_at_epoch)), recorder, *loggers(x, y, writer, die_at_epoch == "-1")]
    model.fit(x[half], y[half], epochs=EPOCHS, batch_size=16, verbose=0, callbacks=callbacks)

    keras.distribution.set_distribution(None)  # the same weights in one process, one device
    if int(process_id) == 0:
        replay(recorder.steps, x, y, f"{log_dir}-one-process")
    result = {
        "process_count": jax.process_count(),
        "devices": len(devices),
        "checksum": float(sum(np.sum(w) for w in recorder.steps[-1])),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
