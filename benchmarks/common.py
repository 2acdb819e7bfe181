"""Shared pieces of the benchmark: clocks, memory, writers, medians and the result table."""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

__all__ = [
    "EpochClock",
    "Row",
    "StepTimer",
    "machine_description",
    "make_writers",
    "median",
    "mlflow_uri",
    "progress",
    "rss_mb",
    "table_markdown",
    "wait_delivered",
    "wait_published",
]

_STARTED = time.perf_counter()


def progress(message: str) -> None:
    """One progress line on stderr with the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - _STARTED:6.0f} s] {message}", file=sys.stderr, flush=True)


def median(values: Iterable[float]) -> float:
    """Median of ``values``; NaN when there are none (the table then shows the gap)."""
    data = [float(v) for v in values]
    return statistics.median(data) if data else math.nan


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mlflow_uri(root: Path) -> str:
    """MLflow's local SQLite store inside ``root``."""
    return f"sqlite:///{root / 'mlflow.db'}"


def make_writers(root: Path, name: str) -> list[Any]:
    """A TensorBoard writer and an MLflow writer (local store), both under ``root``."""
    import vizcallbacks as vc

    return [
        vc.TensorBoardWriter(root / "tensorboard" / name),
        vc.MLflowWriter(
            tracking_uri=mlflow_uri(root),
            experiment_name="benchmark",
            run_name=name,
            spool_dir=root / "spool",
        ),
    ]


def wait_published(logger: Any, count: int, timeout: float = 600.0) -> None:
    """Wait until ``logger`` has published (or skipped, when behind) ``count`` steps."""
    deadline = time.monotonic() + timeout
    while len(logger.timings["publish"]) + len(logger.skipped_steps) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{type(logger).__name__} published fewer than {count} steps")
        time.sleep(0.002)


def wait_delivered(writers: Sequence[Any]) -> None:
    """Wait until writers that deliver in the background (MLflow) have delivered everything."""
    for writer in writers:
        wait = getattr(writer, "wait", None)
        if wait is not None:
            wait()


class EpochClock:
    """Wall time of each epoch: from the first callback's ``on_epoch_begin`` to the last one's
    ``on_epoch_end``, so the callbacks in between and work overlapping the epoch are inside."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._began = 0.0

    def around(self, callbacks: Sequence[keras.callbacks.Callback]) -> list[Any]:
        """``callbacks`` between the clock's start (first) and stop (last) hooks."""
        start = keras.callbacks.LambdaCallback(on_epoch_begin=self._begin)
        stop = keras.callbacks.LambdaCallback(on_epoch_end=self._end)
        return [start, *callbacks, stop]

    def _begin(self, epoch: int, logs: Any = None) -> None:
        self._began = time.perf_counter()

    def _end(self, epoch: int, logs: Any = None) -> None:
        self.seconds.append(time.perf_counter() - self._began)


class StepTimer:
    """Whole cost of each logged epoch, serialized: from before the loggers' ``on_epoch_end``
    until their rendering, writing and MLflow delivery have finished.

    The loggers hold their rendering until the next ``on_epoch_begin`` (when every callback's
    ``on_epoch_end`` has returned), so the timer settles there, after theirs. The last epoch is
    not timed: ``on_train_end`` also writes the run's summary and closes the writers.
    """

    def __init__(self, loggers: Sequence[Any] = (), writers: Sequence[Any] = ()) -> None:
        self.loggers = list(loggers)
        self.writers = list(writers)
        self.seconds: list[float] = []
        self._began: float | None = None

    def around(self, callbacks: Sequence[keras.callbacks.Callback]) -> list[Any]:
        """``callbacks`` between the timer's start hook (``on_epoch_end``, first) and its
        settle hook (``on_epoch_begin``, last)."""
        start = keras.callbacks.LambdaCallback(on_epoch_end=self._begin)
        settle = keras.callbacks.LambdaCallback(on_epoch_begin=self._settle)
        return [start, *callbacks, settle]

    def _begin(self, epoch: int, logs: Any = None) -> None:
        self._began = time.perf_counter()

    def _settle(self, epoch: int, logs: Any = None) -> None:
        if self._began is None:  # the first epoch: nothing logged yet
            return
        for logger in self.loggers:
            wait_published(logger, epoch + 1)  # step 0 (before training) + one per epoch
        wait_delivered(self.writers)
        self.seconds.append(time.perf_counter() - self._began)
        self._began = None


@dataclass(frozen=True)
class Row:
    """One line of the result table."""

    measurement: str
    value: float
    unit: str
    target: str = ""
    holds: bool | None = None  # with a target: None when the noise is too large to tell


def _format(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"


def table_markdown(rows: Sequence[Row]) -> str:
    """The rows as a markdown table: measurement, value, unit, target, whether it holds."""
    lines = ["| measurement | value | unit | target | holds |", "|---|---:|---|---|---|"]
    for row in rows:
        if row.holds is None:
            holds = "inconclusive (noise)" if row.target else ""
        else:
            holds = "yes" if row.holds else "**no**"
        lines.append(
            f"| {row.measurement} | {_format(row.value)} | {row.unit} | {row.target} | {holds} |"
        )
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_description() -> str:
    """CPU, cores, memory, load and library versions, in one line."""
    import mlflow
    import tensorflow as tf

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = math.nan
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{_cpu_model()}, {cores} cores, {memory:.0f} GB RAM, load average {load}; "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, MLflow {mlflow.__version__}"
    )
