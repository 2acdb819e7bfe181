"""The tutorial way, as a baseline: sub-models, ``predict`` and matplotlib figures every epoch.

Per epoch and per layer with a 4-D output: ``keras.Model(inputs, layer.output)`` is built,
``predict`` runs the probe, an 8x8 subplot figure is drawn and saved to PNG, and the PNG is logged
to TensorBoard (``plot_to_image`` of the TensorFlow docs) and to MLflow (``log_artifact``); the
same for the first input channel of each conv layer's kernels. All on the training thread.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

__all__ = ["TutorialLogger", "figure_png"]


def figure_png(maps: np.ndarray, title: str) -> bytes:
    """An 8x8 grid of subplots showing ``maps`` ``(H, W, C)`` channel by channel, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(8, 8, figsize=(12, 12))
    for i, ax in enumerate(axes.flat):
        if i < maps.shape[-1]:
            ax.imshow(maps[..., i], cmap="viridis")
        ax.axis("off")
    fig.suptitle(title)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


class TutorialLogger(keras.callbacks.Callback):
    """Feature maps of ``probe`` (one image, batch of 1) and filters, the tutorial way.

    ``seconds`` holds the wall time of each ``on_epoch_end``: everything happens there.
    ``max_layers`` keeps only the first layers of each kind (smoke runs); ``None``: all.
    """

    def __init__(
        self,
        probe: np.ndarray,
        log_dir: Path,
        tracking_uri: str,
        run_name: str,
        max_layers: int | None = None,
    ):
        super().__init__()
        self.probe = probe
        self.max_layers = max_layers
        self.log_dir = Path(log_dir)
        self.tracking_uri = tracking_uri
        self.run_name = run_name
        self.seconds: list[float] = []
        self._summary: Any = None
        self._client: Any = None
        self._run_id = ""

    def on_train_begin(self, logs: Any = None) -> None:
        import mlflow
        import tensorflow as tf

        self._summary = tf.summary.create_file_writer(str(self.log_dir))
        self._client = mlflow.MlflowClient(self.tracking_uri)
        found = self._client.get_experiment_by_name("benchmark")
        experiment = found.experiment_id if found else self._client.create_experiment("benchmark")
        run = self._client.create_run(experiment, run_name=self.run_name)
        self._run_id = run.info.run_id

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        started = time.perf_counter()
        spatial = [la for la in self.model.layers if len(la.output.shape) == 4]
        convs = [la for la in self.model.layers if isinstance(la, keras.layers.Conv2D)]
        for layer in spatial[: self.max_layers]:
            sub_model = keras.Model(self.model.inputs, layer.output)
            maps = sub_model.predict(self.probe, verbose=0)[0]
            self._log(f"activations_{layer.name}", figure_png(maps, layer.name), epoch)
        for layer in convs[: self.max_layers]:
            kernel = layer.get_weights()[0][:, :, 0, :]  # first input channel, (kh, kw, F)
            self._log(f"filters_{layer.name}", figure_png(kernel, layer.name), epoch)
        self._summary.flush()
        self.seconds.append(time.perf_counter() - started)

    def _log(self, tag: str, png: bytes, step: int) -> None:
        import tensorflow as tf

        image = tf.image.decode_png(png, channels=4)[None]
        with self._summary.as_default():
            tf.summary.image(tag, image, step=step)
        path = self.log_dir / f"{tag}_{step:04d}.png"
        path.write_bytes(png)
        self._client.log_artifact(self._run_id, str(path), artifact_path=f"tutorial/{tag}")

    def on_train_end(self, logs: Any = None) -> None:
        self._summary.close()
        self._client.set_terminated(self._run_id)
