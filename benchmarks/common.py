"""Shared pieces of the benchmark: clocks, memory, writers, medians and the result table."""

from __future__ import annotations

import dataclasses
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
    "HEADER",
    "Clock",
    "Row",
    "cpu_seconds",
    "judged",
    "machine_description",
    "make_writers",
    "measured",
    "median",
    "mlflow_uri",
    "print_and_save",
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


def cpu_seconds() -> float:
    """CPU seconds (user + sys) of every thread of this process and of its waited-for children.

    Work moved to background threads runs on the same cores as training: it is counted here.
    ``getrusage`` resolves microseconds (``os.times`` only 10 ms clock ticks).
    """
    import resource

    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Clock:
    """Wall and CPU seconds of a block: ``with Clock() as c: ...`` then ``c.wall``, ``c.cpu``."""

    wall: float = 0.0
    cpu: float = 0.0

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = cpu_seconds() - self._cpu


@dataclass(frozen=True)
class Row:
    """One line of the result table: the value (median), its spread (min and max over the
    pairs, or over steps where the row says so), a target and the verdict with its reason."""

    measurement: str
    value: float
    unit: str
    low: float = math.nan
    high: float = math.nan
    target: str = ""
    verdict: str = ""  # "holds", "does not hold", "inconclusive" (with a target)
    reason: str = ""


def measured(measurement: str, values: Sequence[float], unit: str) -> Row:
    """A row without a target: the median of ``values`` and their min and max."""
    data = [float(v) for v in values]
    return Row(
        measurement, median(data), unit, min(data, default=math.nan), max(data, default=math.nan)
    )


def judged(
    measurement: str, values: Sequence[float], unit: str, limit: float, at_least: bool = False
) -> Row:
    """A row with a target ``≤ limit`` (or ``≥ limit``), judged on every value, not the median:
    it holds when all values meet it, does not hold when none does, else it is inconclusive."""
    row = measured(measurement, values, unit)
    sign = "≥" if at_least else "≤"
    target = f"{sign} {_format(limit)} {unit}"
    meets = [(v >= limit) if at_least else (v <= limit) for v in values]
    if not values or not all(math.isfinite(v) for v in values):
        verdict, reason = "inconclusive", "no finite measurement"
    elif all(meets):
        worst = row.low if at_least else row.high
        n = len(values)
        verdict, reason = "holds", f"all {n} {sign} target (worst {_format(worst)})"
    elif not any(meets):
        best = row.high if at_least else row.low
        verdict, reason = "does not hold", f"even the best of {len(values)} is {_format(best)}"
    else:
        verdict = "inconclusive"
        reason = f"{sum(meets)} of {len(values)} meet it: the spread straddles the target"
    return dataclasses.replace(row, target=target, verdict=verdict, reason=reason)


def _format(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"


HEADER = "| measurement | value | min to max | unit | target | verdict |"


def table_markdown(rows: Sequence[Row]) -> str:
    """The rows as a markdown table: measurement, value, spread, unit, target, verdict."""
    lines = [HEADER, "|---|---:|---:|---|---|---|"]
    for row in rows:
        spread = f"{_format(row.low)} to {_format(row.high)}" if math.isfinite(row.low) else ""
        verdict = f"**{row.verdict}**" if row.verdict == "does not hold" else row.verdict
        if row.reason:
            verdict += f" ({row.reason})"
        lines.append(
            f"| {row.measurement} | {_format(row.value)} | {spread} | {row.unit} "
            f"| {row.target} | {verdict} |"
        )
    return "\n".join(lines)


def print_and_save(text: str, out: Path | None) -> None:
    """Print a benchmark's result and, with ``--out``, write it there too."""
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")


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
