"""TensorBoard writer: records into event files of one log_dir, without importing TensorFlow.

Summaries are TensorBoard's own protobufs with its plugins' metadata, laid out as ``tf.summary``
(v2) writes them, so TensorBoard and ``tf.compat.v1.train.summary_iterator`` read them unchanged.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.compat.proto import (
    event_pb2,
    summary_pb2,
    tensor_pb2,
    tensor_shape_pb2,
    types_pb2,
)
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.image import metadata as image_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import metadata as text_metadata
from tensorboard.util.tensor_util import make_tensor_proto

from vizcallbacks.messages import say
from vizcallbacks.records import File, Histogram, Image, Params, Record, Scalars, Text
from vizcallbacks.tags import PARAMS_TAG
from vizcallbacks.writers.base import check_log_dir
from vizcallbacks.writers.eventfile import EventFile, last_step
from vizcallbacks.writers.file_lock import claim_directory, release

__all__ = ["HISTOGRAM_BUCKETS", "TensorBoardWriter", "histogram_buckets", "params_markdown"]

_SCALAR_SHAPE = tensor_shape_pb2.TensorShapeProto()
_SCALAR_METADATA = scalar_metadata.create_summary_metadata(display_name=None, description="")

HISTOGRAM_BUCKETS = 30  # as tf.summary.histogram


def histogram_buckets(values: np.ndarray, buckets: int = HISTOGRAM_BUCKETS) -> np.ndarray:
    """``(buckets, 3)`` float64 rows ``[left, right, count]`` of the finite ``values``.

    The same buckets as ``tf.summary.histogram``: all zeros without data; one value repeated
    gives edges all equal to it and every count in the last bucket.
    """
    data = np.asarray(values).ravel()  # in its own dtype until the offsets: one float64 array
    finite = np.isfinite(data)
    if not finite.all():
        data = data[finite]
    if data.size == 0:
        return np.zeros((buckets, 3), dtype=np.float64)
    low, high = float(data.min()), float(data.max())
    if high == low:
        counts = np.zeros(buckets, dtype=np.float64)
        counts[-1] = data.size
        edges = np.full(buckets, low)
        return np.stack([edges, edges, counts], axis=1)
    width = (high - low) / buckets
    offsets = np.subtract(data, low, dtype=np.float64)
    offsets /= width
    index = offsets.astype(np.int64)  # offsets >= 0: truncation is the floor
    np.minimum(index, buckets - 1, out=index)
    counts = np.bincount(index, minlength=buckets).astype(np.float64)
    edges = np.linspace(low, high, buckets + 1)
    edges[-1] = high
    return np.stack([edges[:-1], edges[1:], counts], axis=1)


def params_markdown(params: Mapping[str, Any]) -> str:
    """Parameters as the two-column markdown table ``| parameter | value |``."""
    rows = "\n".join(f"| {k} | {json.dumps(v, default=str)} |" for k, v in params.items())
    return f"| parameter | value |\n|---|---|\n{rows}"


def _text_value(tag: str, text: str) -> summary_pb2.Summary.Value:
    return summary_pb2.Summary.Value(
        tag=tag,
        metadata=text_metadata.create_summary_metadata(display_name=None, description=""),
        tensor=make_tensor_proto(text.encode("utf-8"), dtype=np.object_),
    )


class TensorBoardWriter:
    """Write to TensorBoard event files in ``log_dir``, beside ``keras.callbacks.TensorBoard``.

    Keras' own callback writes to ``log_dir/train`` and ``log_dir/validation``; this writer writes
    to ``log_dir`` itself, so one ``tensorboard --logdir log_dir`` shows Keras' curves and these
    images side by side. The file is opened on first write and closed by ``close()``; writing
    after ``close()`` opens a new file in the same directory (a second ``fit``). Safe to share
    between threads.

    One log directory has one writer at a time: while another writer (in this process or
    another) has ``log_dir`` open, this one writes to a new sub-directory of it, named in one
    warning, so two trainings never interleave in one run. ``directory`` is where it writes.
    """

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.directory = self.log_dir  # log_dir, or its own sub-directory while log_dir is taken
        self._claim: Any = None  # the lock on ``directory``, held from check() to close()
        self._file: EventFile | None = None
        self._lock = threading.Lock()
        self._wrote_images = False
        self._announced = False  # callbacks sharing this writer each close it: say it once
        self._last_step: int | None = None  # read from disk once per fit: steps before it

    def last_step(self) -> int:
        """The highest step logged in ``log_dir`` before this fit (-1 if none): a resumed run
        goes on after it instead of logging a step twice. Read again after ``close()``."""
        with self._lock:
            if self._last_step is None:
                self._claim_directory()
                self._last_step = last_step(self.directory)
            return self._last_step

    def check(self) -> None:
        """Raise now, before training, if ``log_dir`` cannot be created or written; then take
        it for this writer (or its own sub-directory while another writer has it)."""
        with self._lock:
            self._claim_directory()

    def _claim_directory(self) -> None:
        if self._claim is None:
            check_log_dir(self.log_dir, "TensorBoardWriter(log_dir=...)")
            self.directory, self._claim = claim_directory(self.directory, "TensorBoardWriter")

    def write(self, records: Sequence[Record], step: int) -> None:
        """Write ``records`` at ``step``; raises ``OSError`` if the disk refuses them."""
        values: list[summary_pb2.Summary.Value] = []
        params: list[summary_pb2.Summary.Value] = []
        files: list[File] = []
        for record in records:
            if isinstance(record, Image):
                values.append(self._image(record))
            elif isinstance(record, Scalars):
                values.extend(self._scalar(tag, value) for tag, value in record.values.items())
            elif isinstance(record, Histogram):
                values.append(self._histogram(record))
            elif isinstance(record, Text):
                values.append(_text_value(record.tag, record.text))
            elif isinstance(record, Params):
                params.append(_text_value(PARAMS_TAG, params_markdown(record.values)))
            elif isinstance(record, File):
                files.append(record)
            else:
                raise TypeError(f"TensorBoardWriter cannot write {record!r}")
        events = [
            event_pb2.Event(wall_time=time.time(), step=at, summary=summary_pb2.Summary(value=v))
            for at, v in ((step, values), (0, params))
            if v
        ]
        with self._lock:
            if events:
                if self._file is None:
                    self._claim_directory()
                    self._file = EventFile(self.directory)
                self._file.append(events)
            for file in files:
                self._save(file)
            self._wrote_images |= any(isinstance(r, Image) for r in records)

    @staticmethod
    def _image(record: Image) -> summary_pb2.Summary.Value:
        tensor = make_tensor_proto(
            [str(record.width).encode(), str(record.height).encode(), record.png],
            dtype=np.object_,
        )
        return summary_pb2.Summary.Value(
            tag=record.tag,
            metadata=image_metadata.create_summary_metadata(
                display_name=record.tag, description=""
            ),
            tensor=tensor,
        )

    @staticmethod
    def _scalar(tag: str, value: float) -> summary_pb2.Summary.Value:
        # The proto make_tensor_proto(np.float32(value)) builds, made directly: 10x cheaper.
        return summary_pb2.Summary.Value(
            tag=tag,
            metadata=_SCALAR_METADATA,
            tensor=tensor_pb2.TensorProto(
                dtype=types_pb2.DT_FLOAT, tensor_shape=_SCALAR_SHAPE, float_val=[value]
            ),
        )

    @staticmethod
    def _histogram(record: Histogram) -> summary_pb2.Summary.Value:
        return summary_pb2.Summary.Value(
            tag=record.tag,
            metadata=histogram_metadata.create_summary_metadata(display_name=None, description=""),
            tensor=make_tensor_proto(histogram_buckets(record.values), dtype=np.float64),
        )

    def _save(self, record: File) -> None:
        """Save the bytes as ``<directory>/files/<name>`` (an animation, say), never outside it."""
        self._claim_directory()
        target = (self.directory / "files" / record.name).resolve()
        if self.directory.resolve() not in target.parents:
            raise ValueError(
                f"file name {record.name!r} would leave the log directory {self.directory}"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        try:  # a full disk leaves no truncated or empty file behind
            partial.write_bytes(record.data)
            os.replace(partial, target)
        except OSError:
            partial.unlink(missing_ok=True)
            raise

    def flush(self) -> None:
        """Nothing waits: every ``write`` has already handed its records to the OS."""

    def close(self) -> None:
        """Close the event file; safe to call twice. Says once how to view the images."""
        with self._lock:
            if self._claim is not None:
                release(self._claim)
                self._claim = None
            if self._file is None:
                return
            file, self._file = self._file, None
            self._last_step = None  # the next fit reads what this one wrote
            announce = self._wrote_images and not self._announced
            self._announced |= announce
            file.close()
        if announce:
            say(f"vizcallbacks: view the images with `{self.view_command()}`")

    def view_command(self) -> str:
        """The ``tensorboard`` command that shows every logged image step, not only 10."""
        return f"tensorboard --logdir {self.log_dir} --samples_per_plugin images=1000"
