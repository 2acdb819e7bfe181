"""One of 2 JAX processes training under ``keras.distribution.DataParallel``; run as a subprocess.

``python -m tests.jax_multiprocess_run COORDINATOR PROCESS_ID LOG_DIR [DIE_AT_EPOCH]``: process
``PROCESS_ID`` of 2, coordinator ``127.0.0.1:PORT``, gloo CPU collectives, each process its half
of the data (``auto_shard_dataset=False``). With ``DIE_AT_EPOCH`` process 1 exits at once at the
start of that epoch, as a crashed worker would. Prints one JSON line with what the test compares.
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


class Crash(keras.callbacks.Callback):
    """Process 1 dies without a word at the start of epoch ``epoch``."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        if epoch == self.epoch and jax.process_index() == 1:
            os._exit(17)


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
    callbacks = [
        Crash(int(die_at_epoch)),
        vc.ActivationLogger(x[0], [writer], layers=LAYERS),
        vc.GradCAMLogger(x[:2], [writer], layer="conv_b"),
    ]
    model.fit(x[half], y[half], epochs=2, batch_size=16, verbose=0, callbacks=callbacks)

    weights = model.get_weights()
    keras.distribution.set_distribution(None)  # the same weights in one process, one device
    single = models.functional()
    single.set_weights(weights)
    acts = vc.layer_activations(single, x[:1], LAYERS)
    print(
        json.dumps(
            {
                "process_count": jax.process_count(),
                "devices": len(devices),
                "single_device_means": {k: float(np.mean(v)) for k, v in acts.items()},
                "checksum": float(sum(np.sum(w) for w in weights)),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
