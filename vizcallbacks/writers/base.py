"""The writer protocol: the only thing callbacks know about where pictures and numbers go."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Writer", "check_log_dir", "check_writers", "print_msg"]


@runtime_checkable
class Writer(Protocol):
    """A sink for images, scalars, histograms, text and files, keyed by tag and step.

    Implementations open their resources on first use, keep nothing the user logged from being
    lost when the backend fails, and accept ``close()`` more than once. Images are ``uint8``
    arrays ``(H, W, 3)`` (or ``(H, W, 1)``), already rendered.
    """

    def write_image(self, tag: str, image: np.ndarray, step: int) -> None: ...

    def write_scalars(self, values: Mapping[str, float], step: int) -> None: ...

    def write_histogram(self, tag: str, values: np.ndarray, step: int) -> None: ...

    def write_text(self, tag: str, text: str, step: int) -> None: ...

    def write_params(self, params: Mapping[str, Any]) -> None: ...

    def write_file(self, name: str, data: bytes) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def check_writers(writers: object) -> list[Writer]:
    """Return ``writers`` as a list, or raise naming what is wrong with it."""
    if isinstance(writers, Writer):
        return [writers]
    if not isinstance(writers, (list, tuple)):
        raise TypeError(
            "writers must be a list of writers such as [vc.TensorBoardWriter('logs')]. "
            f"Received: writers={writers!r}"
        )
    if not writers:
        raise ValueError(
            "writers is empty: nothing would be logged. Pass at least one writer, "
            "for example writers=[vc.TensorBoardWriter('logs')]."
        )
    for i, writer in enumerate(writers):
        if not isinstance(writer, Writer):
            raise TypeError(
                f"writers[{i}] is not a writer (it needs write_image, write_scalars, "
                "write_histogram, write_text, write_params, write_file, flush and close). "
                f"Received: {writer!r} of type {type(writer).__name__}"
            )
    return list(writers)


def check_log_dir(path: Path, what: str) -> None:
    """Create ``path`` and prove it writable, or raise ``ValueError`` naming it and the fix."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(
            f"{what}: cannot create or write the log directory {str(path)!r} ({err}). "
            "Choose a directory you can write to."
        ) from err


def print_msg(message: str) -> None:
    """Tell the user something at the end of training, the way Keras' own callbacks do.

    Keras routes this to stdout, or to absl logging after
    ``keras.config.disable_interactive_logging()``.
    """
    from keras.src.utils import io_utils

    io_utils.print_msg(message)
