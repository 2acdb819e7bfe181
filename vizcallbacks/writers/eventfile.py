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
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tensorboard.compat.proto import event_pb2

__all__ = ["EventFile", "masked_crc32c"]

_POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected, as TFRecord frames use
_SMALL = 4096  # below this many bytes the plain table loop is as fast
_uid = itertools.count()  # tells apart two files opened in the same second by one process


@lru_cache(maxsize=1)
def _table() -> np.ndarray:
    crc = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        crc = np.where(crc & 1, (crc >> 1) ^ np.uint32(_POLY), crc >> 1).astype(np.uint32)
    return crc


def _crc_loop(crc: int, data: bytes, table: list[int]) -> int:
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


@lru_cache(maxsize=16)
def _shift_tables(length: int) -> tuple[list[int], ...]:
    """Four byte tables of the linear map "run ``length`` zero bytes through the register"."""
    table = _table()
    basis = np.uint32(1) << np.arange(32, dtype=np.uint32)
    for _ in range(length):
        basis = table[basis & 0xFF] ^ (basis >> 8)
    values = np.arange(256, dtype=np.uint32)
    tables = []
    for k in range(4):
        out = np.zeros(256, dtype=np.uint32)
        for bit in range(8):
            out ^= np.where((values >> bit) & 1, basis[8 * k + bit], np.uint32(0))
        tables.append([int(v) for v in out])
    return tuple(tables)


def _crc32c(data: bytes) -> int:
    """CRC-32C of ``data``: chunks run through the table side by side in numpy, then joined."""
    table = _table()
    if len(data) < _SMALL:
        return _crc_loop(0xFFFFFFFF, data, table.tolist()) ^ 0xFFFFFFFF
    # The initial register 0xFFFFFFFF equals a zero register with the first 4 bytes inverted.
    head = bytes(b ^ 0xFF for b in data[:4])
    length = 1 << max(6, (len(data).bit_length() + 1) // 2)  # chunk length near sqrt(n)
    pad = -len(data) % length  # leading zeros leave a zero register at zero
    buffer = np.frombuffer(bytes(pad) + head + data[4:], dtype=np.uint8)
    chunks = buffer.reshape(-1, length).astype(np.uint32)
    crcs = np.zeros(len(chunks), dtype=np.uint32)
    for j in range(length):
        crcs = table[(crcs ^ chunks[:, j]) & 0xFF] ^ (crcs >> 8)
    t0, t1, t2, t3 = _shift_tables(length)
    crc = 0
    for part in crcs.tolist():
        crc = (
            t0[crc & 0xFF] ^ t1[(crc >> 8) & 0xFF] ^ t2[(crc >> 16) & 0xFF] ^ t3[crc >> 24]
        ) ^ part
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C that TFRecord frames carry (what TensorFlow's reader verifies)."""
    crc = _crc32c(data)
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
