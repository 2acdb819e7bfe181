"""TensorBoard writer: images, scalars, histograms and text into event files of one log_dir."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vizcallbacks.writers.base import check_log_dir, print_msg

__all__ = ["TensorBoardWriter"]


class TensorBoardWriter:
    """Write to TensorBoard event files in ``log_dir``, beside ``keras.callbacks.TensorBoard``.

    Keras' own callback writes to ``log_dir/train`` and ``log_dir/validation``; this writer writes
    to ``log_dir`` itself, so one ``tensorboard --logdir log_dir`` shows Keras' curves and these
    images side by side. The file is opened on first use and closed by ``close()``; writing after
    ``close()`` opens a new file in the same directory (a second ``fit``).
    """

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self._file_writer: Any = None
        self._lock = threading.Lock()
        self._wrote_images = False
        self._announced = False  # callbacks sharing this writer each close it: say it once

    def check(self) -> None:
        """Raise now, before training, if ``log_dir`` cannot be created or written."""
        check_log_dir(self.log_dir, "TensorBoardWriter(log_dir=...)")

    def _writer(self) -> Any:
        if self._file_writer is None:
            import tensorflow as tf

            self.check()
            self._file_writer = tf.summary.create_file_writer(str(self.log_dir))
        return self._file_writer

    def write_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """Write one uint8 ``(H, W, C)`` image, PNG-encoded once, as TensorBoard's image summary."""
        import tensorflow as tf
        from tensorboard.plugins.image import metadata

        # Level 1: a third of the default's encoding time for files about 10 % larger.
        png = tf.io.encode_png(np.ascontiguousarray(image, dtype=np.uint8), compression=1)
        height, width = image.shape[:2]
        tensor = tf.stack([tf.constant(str(width)), tf.constant(str(height)), png])
        with self._lock, self._writer().as_default():
            tf.summary.write(
                tag, tensor, step=step, metadata=metadata.create_summary_metadata(tag, "")
            )
        self._wrote_images = True

    def write_scalars(self, values: Mapping[str, float], step: int) -> None:
        import tensorflow as tf

        with self._lock, self._writer().as_default():
            for tag, value in values.items():
                tf.summary.scalar(tag, float(value), step=step)

    def write_histogram(self, tag: str, values: np.ndarray, step: int) -> None:
        import tensorflow as tf

        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        with self._lock, self._writer().as_default():
            tf.summary.histogram(tag, finite, step=step)

    def write_text(self, tag: str, text: str, step: int) -> None:
        import tensorflow as tf

        with self._lock, self._writer().as_default():
            tf.summary.text(tag, text, step=step)

    def write_params(self, params: Mapping[str, Any]) -> None:
        """Parameters as a two-column markdown table under the text tag ``vizcallbacks/params``."""
        rows = "\n".join(f"| {k} | {json.dumps(v, default=str)} |" for k, v in params.items())
        self.write_text("vizcallbacks/params", f"| parameter | value |\n|---|---|\n{rows}", 0)

    def write_file(self, name: str, data: bytes) -> None:
        """Save ``data`` as ``log_dir/files/<name>`` (an animation, say), never outside log_dir."""
        target = (self.log_dir / "files" / name).resolve()
        if self.log_dir.resolve() not in target.parents:
            raise ValueError(f"file name {name!r} would leave the log directory {self.log_dir}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def flush(self) -> None:
        with self._lock:
            if self._file_writer is not None:
                self._file_writer.flush()

    def close(self) -> None:
        """Flush and close the event file; safe to call twice. Says how to view the images."""
        with self._lock:
            if self._file_writer is None:
                return
            self._file_writer.close()
            self._file_writer = None
        if self._wrote_images and not self._announced:
            self._announced = True
            print_msg(f"vizcallbacks: view the images with `{self.view_command()}`")

    def view_command(self) -> str:
        """The ``tensorboard`` command that shows every logged image step, not only 10."""
        return f"tensorboard --logdir {self.log_dir} --samples_per_plugin images=1000"
