"""Read TensorBoard event files back: what the tests assert on."""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image


def read_events(log_dir: str | Path) -> dict[str, dict[int, Any]]:
    """``{tag: {step: value}}`` from every event file directly in ``log_dir``.

    Images become uint8 arrays decoded from their PNG, scalars floats, histograms and text the
    raw tensor. A (tag, step) written twice raises, so tests catch duplicates.
    """
    found: dict[str, dict[int, Any]] = defaultdict(dict)
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                tensor = tf.make_ndarray(value.tensor)
                if plugin == "images":
                    decoded: Any = np.asarray(Image.open(io.BytesIO(tensor[2])))
                    width, height = int(tensor[0]), int(tensor[1])
                    assert decoded.shape[:2] == (height, width), value.tag
                elif plugin == "scalars":
                    decoded = float(tensor)
                else:
                    decoded = tensor
                if event.step in found[value.tag]:
                    raise AssertionError(f"{value.tag} step {event.step} written twice")
                found[value.tag][event.step] = decoded
    return dict(found)


def tag_steps(events: dict[str, dict[int, Any]]) -> set[tuple[str, int]]:
    """The exact set of (tag, step) pairs logged."""
    return {(tag, step) for tag, steps in events.items() for step in steps}


def holds_step(log_dir: str | Path, tags: tuple[str, ...], step: int) -> bool:
    """Whether the event files of a process still running already hold ``step`` of every tag in
    ``tags`` (a record still being written reads as not yet)."""
    try:
        events = read_events(log_dir)
    except Exception:  # a half-written record, or a duplicate that the test will report
        return False
    return all(step in events.get(tag, {}) for tag in tags)
