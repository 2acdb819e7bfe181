"""A training process for the MLflow reliability tests: ``python -m tests.reliability_script``.

``MODE URI SPOOL_DIR EXPERIMENT``; the model, loggers and writers are locals of ``train()``, as in
the usual script whose main function returns. Modes: ``interrupt`` and ``error`` stop ``fit`` from
a callback (KeyboardInterrupt, RuntimeError) without ``finish()``; the ways a process ends
(``ENDINGS``) send it a real SIGINT or SIGTERM, call ``sys.exit`` or raise, during or after
``fit``; ``interrupt-after-go`` first writes ``SPOOL_DIR/../ready`` and waits for
``SPOOL_DIR/../go`` (the test kills the server meanwhile); ``full-before`` and ``full-during`` cap
the size of files this process may write (``RLIMIT_FSIZE``) before ``fit`` or after its first
epoch, as a full disk would.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
from keras import layers

import vizcallbacks as vc

__all__ = ["ENDINGS", "main", "tiny_model_and_data"]

# mode: the status its run must end with
ENDINGS = {
    "normal": "FINISHED",
    "finish-after-caught-sigint": "KILLED",  # try: fit except KeyboardInterrupt: logger.finish()
    "caught-sigint": "KILLED",  # try: fit except KeyboardInterrupt: pass; exit status 0
    "sigint": "KILLED",  # a real Ctrl-C, not caught
    "sigterm": "KILLED",
    "exit-during-fit": "FAILED",  # sys.exit(3) from a callback
    "error-after-fit": "FINISHED",  # training finished; the user's code then fails
    "exit-after-fit": "FINISHED",
}
STOPS = {"interrupt", "error", "interrupt-after-go", "full-during"}


def cap_file_size(limit: int) -> None:
    """Writes beyond ``limit`` bytes fail with ``OSError: [Errno 27] File too large``."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def send_self(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(30)  # the handler raises here


DURING_FIT: dict[str, Callable[[], None]] = {
    "finish-after-caught-sigint": lambda: send_self(signal.SIGINT),
    "caught-sigint": lambda: send_self(signal.SIGINT),
    "sigint": lambda: send_self(signal.SIGINT),
    "sigterm": lambda: send_self(signal.SIGTERM),
    "exit-during-fit": lambda: sys.exit(3),
}


class Stop(keras.callbacks.Callback):
    """Stops (or caps the disk) at the end of the second epoch, once its steps are delivered."""

    def __init__(self, mode: str, writer: vc.MLflowWriter, spool_dir: Path) -> None:
        super().__init__()
        self.mode, self.writer, self.spool_dir = mode, writer, spool_dir

    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        if epoch != 1 or (self.mode not in STOPS and self.mode not in DURING_FIT):
            return
        if self.mode == "full-during":
            (items,) = self.spool_dir.glob("*/items.jsonl")
            cap_file_size(items.stat().st_size + 40)  # the next line is cut short, then nothing
            return
        self.writer.wait(timeout=60)
        if self.mode in DURING_FIT:
            DURING_FIT[self.mode]()
        if self.mode == "interrupt-after-go":
            (self.spool_dir.parent / "ready").touch()
            while not (self.spool_dir.parent / "go").exists():
                time.sleep(0.1)
        if self.mode == "error":
            raise RuntimeError("training broke")
        raise KeyboardInterrupt


def tiny_model_and_data() -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """A compiled two-layer CNN and 32 random 16x16 images with labels."""
    keras.utils.set_random_seed(0)
    keras.config.disable_interactive_logging()
    x = np.random.default_rng(0).random((32, 16, 16, 1)).astype("float32")
    y = np.arange(32) % 10
    inputs = keras.Input((16, 16, 1))
    h = layers.Conv2D(4, 3, activation="relu", name="conv_a")(inputs)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    model = keras.Model(inputs, layers.Dense(10, activation="softmax", name="probs")(h))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model, x, y


def train(mode: str, uri: str, spool_dir: str, experiment: str) -> None:
    model, x, y = tiny_model_and_data()
    writer = vc.MLflowWriter(uri, experiment_name=experiment, spool_dir=spool_dir, retry_interval=1)
    if mode == "full-before":
        cap_file_size(0)
    logger = vc.ActivationLogger(x[0], [writer])
    callbacks = [Stop(mode, writer, Path(spool_dir)), logger]
    if mode.startswith(("caught", "finish-after-caught")):
        try:
            model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=callbacks)
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
            if mode.startswith("finish"):
                logger.finish()
        return
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=callbacks)
    print("TRAINED", flush=True)


def main(mode: str, uri: str, spool_dir: str, experiment: str) -> None:
    train(mode, uri, spool_dir, experiment)
    gc.collect()  # what train() held is gone, as it is sooner or later in any script
    if mode == "error-after-fit":
        raise RuntimeError("the user's code after fit broke")
    if mode == "exit-after-fit":
        sys.exit(2)


if __name__ == "__main__":
    main(*sys.argv[1:5])
