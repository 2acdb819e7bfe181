"""Two trainings on one log directory (and one spool_dir): ``python -m tests.shared_dir_script``.

``NAME LOG_DIR SPOOL_DIR URI HOLD``: trains the tiny model of ``tests.reliability_script`` for
three epochs with a ``TensorBoardWriter(LOG_DIR)`` and, unless ``URI`` is ``-``, an
``MLflowWriter(URI, experiment_name=NAME, spool_dir=SPOOL_DIR)``. Unless ``HOLD`` is ``-``, after
the second epoch it writes ``HOLD/ready`` and waits for ``HOLD/go``: the test runs the other
training meanwhile.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import keras

import vizcallbacks as vc
from tests.reliability_script import tiny_model_and_data

__all__ = ["main"]


class Hold(keras.callbacks.Callback):
    """Waits at the end of the second epoch until the test says go."""

    def __init__(self, hold: Path) -> None:
        super().__init__()
        self.hold = hold

    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        if epoch == 1:
            (self.hold / "ready").touch()
            while not (self.hold / "go").exists():
                time.sleep(0.1)


def main(name: str, log_dir: str, spool_dir: str, uri: str, hold: str) -> None:
    model, x, y = tiny_model_and_data()
    writers: list[Any] = [vc.TensorBoardWriter(log_dir)]
    if uri != "-":
        writers.append(vc.MLflowWriter(uri, experiment_name=name, spool_dir=spool_dir))
    callbacks: list[Any] = [vc.ActivationLogger(x[0], writers)]
    if hold != "-":
        callbacks.insert(0, Hold(Path(hold)))
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=callbacks)
    print("TRAINED", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
