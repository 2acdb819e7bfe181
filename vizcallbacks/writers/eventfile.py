"""One TensorBoard event file, written synchronously without TensorFlow.

TensorBoard's ``EventFileWriter`` opens its file through ``tensorboard.compat.tf``, which imports
the whole of TensorFlow when it is installed (seconds, hundreds of MB) and reports a full disk
only on a later call, from its background thread. This writes the same TFRecord framing itself:
records reach the file and the OS by the end of :meth:`EventFile.append`, or it raises.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import google_crc32c
from tensorboard.compat.proto import event_pb2

from vizcallbacks.tags import is_epoch_step

__all__ = ["EventFile", "last_step", "masked_crc32c"]

_uid = itertools.count()  # tells apart two files opened in the same second by one process


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C that TFRecord frames carry (what TensorFlow's reader verifies)."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _frame(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return (
        header
        + struct.pack("<I", masked_crc32c(header))
        + data
        + struct.pack("<I", masked_crc32c(data))
    )


class EventFile:
    """``events.out.tfevents.*`` in ``log_dir``, created on the first :meth:`append`.

    Not thread-safe: the owner holds a lock. After a failed append the file is cut back to its
    last whole record and closed (a later append opens a new file); a file that never got a
    whole record is removed, so a full disk leaves no empty event files behind.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.path: Path | None = None
        self._file: BinaryIO | None = None
        self._size = 0  # bytes of whole records in the file

    def _open(self) -> tuple[BinaryIO, bytes]:
        name = "events.out.tfevents.%010d.%s.%s.%s.v2" % (  # noqa: UP031 (TensorFlow's pattern)
            time.time(),
            socket.gethostname(),
            os.getpid(),
            next(_uid),
        )
        self.path = self.log_dir / name
        self._file = open(self.path, "xb")  # noqa: SIM115 (kept open across appends)
        self._size = 0
        version = event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
        return self._file, _frame(version.SerializeToString())

    def append(self, events: Sequence[event_pb2.Event]) -> None:
        """Write ``events`` and hand them to the OS, or raise ``OSError`` leaving the file whole."""
        file, head = (self._file, b"") if self._file is not None else self._open()
        data = b"".join([head, *(_frame(event.SerializeToString()) for event in events)])
        try:
            file.write(data)
            file.flush()
        except OSError:
            self._discard()
            raise
        self._size += len(data)

    def _discard(self) -> None:
        """Close after a failure, cutting the file back to its last whole record."""
        with contextlib.suppress(OSError):
            self.close()
        path, self.path = self.path, None
        if path is None:
            return
        with contextlib.suppress(OSError):
            if self._size == 0:
                path.unlink()
            else:
                os.truncate(path, self._size)

    def close(self) -> None:
        """Close the file this object opened; safe to call twice."""
        file, self._file = self._file, None
        if file is not None:
            file.close()


def _records(path: Path) -> Iterator[bytes]:
    """The framed records of one event file, stopping at a cut-short or damaged tail."""
    data = path.read_bytes()
    offset = 0
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        end = offset + 12 + length + 4
        if end > len(data):
            return
        yield data[offset + 12 : offset + 12 + length]
        offset = end


def last_step(log_dir: Path) -> int:
    """The highest epoch step of any summary in ``log_dir``'s event files (not its subfolders;
    batch-stepped kinds left out), or -1.

    Read before training so that a resumed run continues after what is already there.
    """
    highest = -1
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        with contextlib.suppress(OSError):
            for data in _records(path):
                event = event_pb2.Event.FromString(data)
                if event.HasField("summary") and any(
                    is_epoch_step(value.tag) for value in event.summary.value
                ):
                    highest = max(highest, int(event.step))
    return highest
