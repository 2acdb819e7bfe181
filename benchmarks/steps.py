"""Cost per logged step in CPU seconds: the loggers' hooks called directly, as ``fit`` calls them.

A loop is ``on_train_begin`` (setup and step 0), then ``on_epoch_end``/``on_epoch_begin`` for
each step with the model fixed, then the MLflow delivery waited for and ``on_train_end`` (the
summary, the writers closed). Its process CPU time (every thread: the loggers' background
threads and MLflow's sender run on the same cores as training) minus a baseline with no logger
(the same hooks on an empty callback, plus what the idle process burns over as long), without
``on_train_begin`` (reported apart), divided by the steps. Each step is settled (rendered and
written) before the next ``on_epoch_end``, so the blocking time is not inflated by a backlog.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmarks.common import (
    Clock,
    Row,
    cpu_seconds,
    judged,
    make_writers,
    measured,
    median,
    progress,
    rss_mb,
    wait_delivered,
    wait_published,
)

__all__ = ["Loop", "StepCost", "hook_loop", "idle_rate", "step_cost", "step_rows"]

Setup = Callable[[Path, str], tuple[list[Any], list[Any]]]  # (root, name) -> loggers, writers


@dataclass
class Loop:
    """One loop of hooks: totals and per-step figures."""

    steps: int
    wall: float = 0.0
    cpu: float = 0.0
    begin_cpu: float = 0.0  # on_train_begin: setup (tracing) and step 0's compute
    begin_wall: float = 0.0
    end_wall: float = 0.0  # on_train_end: the summary, the drain, the writers closed
    end_cpu: float = 0.0
    blocking: list[float] = field(default_factory=list)  # on_epoch_end, all loggers, per step
    blocking_cpu: list[float] = field(default_factory=list)  # CPU in on_epoch_end per step
    step_cpu: list[float] = field(default_factory=list)  # CPU from one step's start to the next
    rss: list[float] = field(default_factory=list)  # MB after each settled step


def _published(logger: Any, step: int, last: int) -> None:
    """Wait until ``logger`` has published its steps up to ``step`` (of ``last``): step 0, then
    every ``every_n_epochs``-th and the last."""
    if hasattr(logger, "timings"):
        every = logger.every_n_epochs
        logged = 1 + sum(k % every == 0 or k == last for k in range(1, step + 1))
        wait_published(logger, logged)


def hook_loop(
    model: keras.Model, loggers: Sequence[Any], writers: Sequence[Any], steps: int
) -> Loop:
    """Run the hooks of ``loggers`` for ``steps`` logged epochs; see the module docstring."""
    gc.collect()
    loop = Loop(steps)
    with Clock() as whole:
        with Clock() as begin:
            for logger in loggers:
                logger.set_model(model)
                logger.set_params({"epochs": steps, "steps": 1, "verbose": 0})
                logger.on_train_begin()
        for logger in loggers:
            logger.on_epoch_begin(0)  # step 0 is rendered from here
        mark = cpu_seconds()
        for epoch in range(steps):
            for logger in loggers:
                _published(logger, epoch, steps)
            now = cpu_seconds()
            if epoch:
                loop.step_cpu.append(now - mark)
                loop.rss.append(rss_mb())
            mark = now
            with Clock() as blocking:
                for logger in loggers:
                    logger.on_epoch_end(epoch)
            loop.blocking.append(blocking.wall)
            loop.blocking_cpu.append(blocking.cpu)
            for logger in loggers:
                logger.on_epoch_begin(epoch + 1)  # what fit calls next: rendering starts
        for logger in loggers:
            _published(logger, steps, steps)
        loop.step_cpu.append(cpu_seconds() - mark)
        loop.rss.append(rss_mb())
        wait_delivered(writers)
        with Clock() as end:
            for logger in loggers:
                logger.on_train_end()  # summary; the writers close (MLflow: rest delivered)
    loop.wall, loop.cpu, loop.begin_cpu = whole.wall, whole.cpu, begin.cpu
    loop.begin_wall, loop.end_wall, loop.end_cpu = begin.wall, end.wall, end.cpu
    return loop


def idle_rate(seconds: float = 0.5) -> float:
    """CPU seconds per second the process burns while the main thread sleeps."""
    gc.collect()
    with Clock() as idle:
        time.sleep(seconds)
    return idle.cpu / idle.wall


@dataclass
class StepCost:
    """Paired loops of one configuration: per pair, CPU per step over the baseline."""

    name: str
    per_step: list[float] = field(default_factory=list)  # CPU s per step, loggers only
    begin: list[float] = field(default_factory=list)  # CPU s of on_train_begin
    blocking: list[float] = field(default_factory=list)  # median blocking s per pair
    blocking_cpu: list[float] = field(default_factory=list)  # CPU s per step in on_epoch_end
    wall: list[float] = field(default_factory=list)  # wall s per step (settled, sequential)
    loops: list[Loop] = field(default_factory=list)


def baseline(model: keras.Model, steps: int) -> Loop:
    """The loop with one empty callback: what the hooks and the loop cost on their own."""
    return hook_loop(model, [keras.callbacks.Callback()], [], steps)


def step_cost(
    cost: StepCost, model: keras.Model, setup: Setup, root: Path, steps: int, pair: int
) -> None:
    """One pair (baseline, then the loggers) added to ``cost``."""
    base = baseline(model, steps)
    rate = idle_rate(0.3)
    loggers, writers = setup(root, f"{cost.name}_{pair}")
    loop = hook_loop(model, loggers, writers, steps)
    base_cpu = base.cpu - base.begin_cpu + rate * max(0.0, loop.wall - base.wall)
    cost.per_step.append((loop.cpu - loop.begin_cpu - base_cpu) / steps)
    cost.begin.append(loop.begin_cpu)
    cost.blocking.append(median(loop.blocking))
    cost.blocking_cpu.append(sum(loop.blocking_cpu) / steps)
    cost.wall.append(loop.wall / steps)
    cost.loops.append(loop)
    progress(
        f"{cost.name} pair {pair + 1}: {1000 * cost.per_step[-1]:.0f} ms CPU a step, blocking "
        f"{1000 * cost.blocking[-1]:.1f} ms, setup {cost.begin[-1]:.2f} s CPU"
    )


# The configurations of targets 2 and 3 ---------------------------------------------------
def _default(probe: np.ndarray, writers: list[Any]) -> list[Any]:
    import vizcallbacks as vc

    return [vc.ActivationLogger(probe, writers), vc.FilterLogger(writers)]


def tensorboard_only(probe: np.ndarray) -> Setup:
    import vizcallbacks as vc

    def setup(root: Path, name: str) -> tuple[list[Any], list[Any]]:
        writers = [vc.TensorBoardWriter(root / "tensorboard" / name)]
        return _default(probe, writers), writers

    return setup


def both_writers(probe: np.ndarray) -> Setup:
    def setup(root: Path, name: str) -> tuple[list[Any], list[Any]]:
        writers = make_writers(root, name)
        return _default(probe, writers), writers

    return setup


def demo(probe: np.ndarray, names: Sequence[str]) -> Setup:
    """``experiments.fashion_cnn``'s loggers: activations, filters, Grad-CAM, 11 probes."""
    import vizcallbacks as vc
    from experiments.datasets import FASHION_CLASSES

    def setup(root: Path, name: str) -> tuple[list[Any], list[Any]]:
        writers = make_writers(root, name)
        loggers = [
            vc.ActivationLogger(probe, writers, probe_names=list(names)),
            vc.FilterLogger(writers),
            vc.GradCAMLogger(probe, writers, class_names=FASHION_CLASSES, probe_names=list(names)),
        ]
        return loggers, writers

    return setup


def tutorial(probe: np.ndarray, max_layers: int | None) -> Setup:
    from benchmarks.common import mlflow_uri
    from benchmarks.tutorial import TutorialLogger

    def setup(root: Path, name: str) -> tuple[list[Any], list[Any]]:
        log_dir = root / "tutorial" / name
        return [TutorialLogger(probe, log_dir, mlflow_uri(root), name, max_layers)], []

    return setup


def step_rows(costs: dict[str, StepCost], probes: int) -> list[Row]:
    """Targets 2 and 3 and the figures behind them."""
    tb, both, demo_, tut = costs["tensorboard"], costs["both"], costs["demo"], costs["tutorial"]
    ms = [1000 * v for v in tb.per_step]
    rows = [
        judged("2. CPU per logged step, 1 probe, TensorBoard alone", ms, "ms", 60),
        judged(
            "2. CPU per logged step, 1 probe, TensorBoard + MLflow",
            [1000 * v for v in both.per_step],
            "ms",
            150,
        ),
        judged(
            f"2. CPU per logged step, the {probes}-probe demo (activations + filters + "
            "Grad-CAM), TensorBoard + MLflow",
            demo_.per_step,
            "s",
            0.6,
        ),
    ]
    ratios = [t / o for t, o in zip(tut.per_step, both.per_step, strict=True)]
    rows += [
        judged(
            "3. whole work, tutorial way / vizcallbacks (CPU per logged step, 1 probe, "
            "TensorBoard + MLflow)",
            ratios,
            "x",
            50,
            at_least=True,
        ),
        judged(
            "3. blocking: on_epoch_end, both loggers, 1 probe, TensorBoard + MLflow",
            [1000 * v for v in both.blocking],
            "ms",
            5,
        ),
        measured("3. tutorial way: CPU per logged step", tut.per_step, "s"),
        measured(
            "3. tutorial way: wall per logged step (all on the training thread)", tut.wall, "s"
        ),
    ]
    for label, cost in (("TensorBoard alone", tb), ("TensorBoard + MLflow", both)):
        rows.append(
            measured(f"2. {label}: wall per step, settled", [1000 * v for v in cost.wall], "ms")
        )
    for label, cost in (("1 probe, TensorBoard + MLflow", both), (f"{probes}-probe demo", demo_)):
        rows += [
            measured(
                f"2. {label}: CPU in on_epoch_end per step",
                [1000 * v for v in cost.blocking_cpu],
                "ms",
            ),
            measured(
                f"2. {label}: on_train_begin CPU (setup, tracing; not in the above)",
                cost.begin,
                "s",
            ),
        ]
    return rows
