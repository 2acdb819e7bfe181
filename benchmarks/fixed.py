"""Fixed costs (target 10) and every logger at once (target 11).

10. What a user waits for beyond plain ``fit``: from the call to the first training batch, and
    from the last epoch's end to ``fit`` returning. Plain and logged fits alternate on one warm
    model (its train step traced before), new loggers and writers for each logged fit; two
    marker callbacks (first and last in the list) stamp wall and process CPU time. Each pair's
    logged minus plain figure is judged. The demo CNN logs to TensorBoard + MLflow (a store
    whose SQLite schema exists: MLflow's own first-use cost is reported apart); ResNet50 at
    64 px logs all its layers to TensorBoard.
11. Every logger on the demo CNN, fixed costs included, over the demo's 5 epochs: the hooks
    called as ``fit`` calls them (``benchmarks.steps.hook_loop``) for 5 logged epochs, CPU over
    a baseline loop, and the training thread's wall (setup, every ``on_epoch_end``, the drain
    at train end), each as a % of 5 plain 60,000-image epochs measured in target 1.
"""

from __future__ import annotations

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
    mlflow_uri,
    progress,
)
from benchmarks.steps import baseline, hook_loop, idle_rate

__all__ = [
    "FixedCost",
    "every_logger",
    "every_logger_makers",
    "every_logger_rows",
    "fixed_rows",
    "schema_seconds",
]

Make = Callable[[Path, str], list[Any]]  # (root, name) -> the loggers of one logged fit


class _Stamps(keras.callbacks.Callback):
    """Wall and CPU time at the first training batch and at the last epoch's end."""

    def __init__(self) -> None:
        super().__init__()
        self.first_batch: tuple[float, float] | None = None
        self.epoch_end: tuple[float, float] = (0.0, 0.0)

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.first_batch is None:
            self.first_batch = (time.perf_counter(), cpu_seconds())

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch_end = (time.perf_counter(), cpu_seconds())


@dataclass
class FixedCost:
    """Per pair, logged minus plain: seconds before the first batch and after the last epoch."""

    what: str
    begin_wall: list[float] = field(default_factory=list)
    begin_cpu: list[float] = field(default_factory=list)
    end_wall: list[float] = field(default_factory=list)
    end_cpu: list[float] = field(default_factory=list)


def _fixed_fit(
    model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int, loggers: list[Any]
) -> tuple[float, float, float, float]:
    """One fit: (wall, CPU) from the call to the first batch, then from the last epoch's end
    (before any logger's on_epoch_end) to fit returning."""
    first, last = _Stamps(), _Stamps()
    started = (time.perf_counter(), cpu_seconds())
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[first, *loggers, last])
    ended = (time.perf_counter(), cpu_seconds())
    assert last.first_batch is not None
    return (
        last.first_batch[0] - started[0],
        last.first_batch[1] - started[1],
        ended[0] - first.epoch_end[0],
        ended[1] - first.epoch_end[1],
    )


def fixed_cost(
    what: str, model: keras.Model, data: tuple[np.ndarray, np.ndarray], make: Make, root: Path,
    pairs: int, epochs: int = 3,
) -> FixedCost:  # fmt: skip
    """``pairs`` pairs of plain and logged fits of ``epochs`` epochs on ``model`` (warmed)."""
    x, y = data
    model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)  # trace the train step
    cost = FixedCost(what)
    for pair in range(pairs):
        plain = _fixed_fit(model, x, y, epochs, [])
        logged = _fixed_fit(model, x, y, epochs, make(root, f"fixed_{what[:12]}_{pair}"))
        bw, bc, ew, ec = (lg - pl for lg, pl in zip(logged, plain, strict=True))
        cost.begin_wall.append(bw)
        cost.begin_cpu.append(bc)
        cost.end_wall.append(ew)
        cost.end_cpu.append(ec)
        progress(f"{what} pair {pair + 1}: +{bw:.2f} s before the first batch, +{ew:.2f} s after")
    return cost


def schema_seconds(root: Path) -> float:
    """Wall seconds MLflow takes to create its SQLite schema in a new store (its own cost)."""
    import mlflow

    with Clock() as clock:
        mlflow.MlflowClient(mlflow_uri(root)).search_experiments()
    return clock.wall


def _demo_loggers(data: Any) -> Make:
    """The demo's loggers (activations, filters and Grad-CAM of every probe image), one pair
    of writers."""
    makers = every_logger_makers(data)
    default = ("ActivationLogger", "FilterLogger", "GradCAMLogger")

    def make(root: Path, name: str) -> list[Any]:
        writers = make_writers(root, name)
        return [makers[logger](writers) for logger in default]

    return make


def _resnet_loggers(image: np.ndarray) -> Make:
    import vizcallbacks as vc

    def make(root: Path, name: str) -> list[Any]:
        writers = [vc.TensorBoardWriter(root / "tensorboard" / name)]
        return [
            vc.ActivationLogger(image, writers),
            vc.FilterLogger(writers),
            vc.GradCAMLogger(image, writers),
        ]

    return make


def fixed_rows(
    demo: keras.Model, data: Any, root: Path, pairs: int, samples: int, resnet_size: int,
    resnet_samples: int, quick: bool,
) -> list[Row]:  # fmt: skip
    """Target 10 for the demo CNN (TensorBoard + MLflow) and ResNet50 (``quick``: an 8-layer
    stack), with MLflow's schema creation in a new store apart."""
    from benchmarks.large import conv_stack, photo

    schema = schema_seconds(root / "new_store")
    fashion = (data.x[:samples], data.y[:samples])
    costs = [fixed_cost("demo CNN", demo, fashion, _demo_loggers(data), root,
                        pairs)]  # fmt: skip
    if quick:
        model, what = conv_stack(8, 64, resnet_size), f"8-layer conv stack {resnet_size} px"
    else:
        model = keras.applications.ResNet50(
            weights=None, input_shape=(resnet_size, resnet_size, 3), classes=10
        )
        what = f"ResNet50 {resnet_size} px"
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    if quick:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    image, _ = photo(resnet_size)
    rng = np.random.default_rng(0)
    images = rng.random((resnet_samples, resnet_size, resnet_size, 3), dtype="float32")
    costs.append(
        fixed_cost(what, model, (images, rng.integers(0, 10, len(images))),
                   _resnet_loggers(image), root, pairs)
    )  # fmt: skip
    rows = []
    for cost, (begin, end) in zip(costs, [(0.3, 0.3), (1.5, 2.0)], strict=True):
        setup = (
            "Activation + Filter + GradCAM loggers, TensorBoard + MLflow"
            if cost.what == "demo CNN"
            else "every layer, Activation + Filter + GradCAM loggers, TensorBoard"
        )
        rows += [
            judged(f"10. {cost.what} ({setup}): fit() to the first training batch, wall "
                   "over plain fit", cost.begin_wall, "s", begin),
            judged(f"10. {cost.what}: last epoch end to fit returning, wall over plain fit",
                   cost.end_wall, "s", end),
            measured(f"10. {cost.what}: fit() to the first batch, CPU over plain fit",
                     cost.begin_cpu, "s"),
            measured(f"10. {cost.what}: last epoch end to fit returning, CPU over plain fit",
                     cost.end_cpu, "s"),
        ]  # fmt: skip
    rows.append(Row("10. MLflow's own first use: creating the SQLite schema of a new store "
                    "(once per store, not in the rows above)", schema, "s"))  # fmt: skip
    return rows


# Target 11: every logger --------------------------------------------------------------------
Logger = Callable[[list[Any]], Any]  # writers -> one logger


def every_logger_makers(data: Any) -> dict[str, Logger]:
    """Each logger of target 11 by name, made on the writers given: Activation, Filter, GradCAM,
    Attribution (ten methods, faithfulness), FilterPattern (every 5 epochs), Gradient and
    Representation loggers with their defaults."""
    import vizcallbacks as vc
    from experiments.datasets import FASHION_CLASSES
    from vizcallbacks.compute.attribution.faithfulness import FAITHFULNESS_METRICS

    names = list(data.names)
    return {
        "ActivationLogger": lambda w: vc.ActivationLogger(data.probe, w, probe_names=names),
        "FilterLogger": lambda w: vc.FilterLogger(w),
        "GradCAMLogger": lambda w: vc.GradCAMLogger(
            data.probe, w, class_names=FASHION_CLASSES, probe_names=names
        ),
        "AttributionLogger": lambda w: vc.AttributionLogger(
            data.probe,
            w,
            class_names=FASHION_CLASSES,
            probe_names=names,
            faithfulness=FAITHFULNESS_METRICS,
        ),
        "FilterPatternLogger": lambda w: vc.FilterPatternLogger(w),
        "GradientLogger": lambda w: vc.GradientLogger((data.x[:32], data.y[:32]), w),
        "RepresentationLogger": lambda w: vc.RepresentationLogger(data.x[-256:], w),
    }


def every_logger(data: Any, root: Path, name: str) -> list[Any]:
    """Every logger of target 11 on one TensorBoard + one MLflow writer."""
    writers = make_writers(root, name)
    return [make(writers) for make in every_logger_makers(data).values()]


def every_logger_rows(
    model: keras.Model, data: Any, root: Path, plain_cpu: Sequence[float],
    plain_wall: Sequence[float], pairs: int, epochs: int = 5,
) -> list[Row]:  # fmt: skip
    """Target 11: every logger and the three default ones on the demo CNN, ``epochs`` logged
    epochs (the demo's 5) with setup, every step and the summary, CPU and training-thread wall,
    as a % of as many plain epochs."""
    cpu_epoch, wall_epoch = median(plain_cpu), median(plain_wall)
    found: dict[str, tuple[list[float], list[float]]] = {}
    setups = {
        "every logger": lambda name: every_logger(data, root, name),
        "the three default loggers": lambda name: _demo_loggers(data)(root, name),
    }
    for pair in range(pairs):
        for what, make in setups.items():
            base = baseline(model, epochs)
            rate = idle_rate(0.3)
            loop = hook_loop(model, make(f"all_{what[:5]}_{pair}"), [], epochs)
            base_cpu = base.cpu + rate * max(0.0, loop.wall - base.wall)
            cpu = 100 * (loop.cpu - base_cpu) / (epochs * cpu_epoch)
            thread = loop.begin_wall + sum(loop.blocking) + loop.end_wall
            wall = 100 * thread / (epochs * wall_epoch)
            found.setdefault(what, ([], []))
            found[what][0].append(cpu)
            found[what][1].append(wall)
            progress(f"{what} pair {pair + 1}: {cpu:.2f} % CPU, {wall:.2f} % wall")
    rows = []
    for what, limit in (("every logger", 3.0), ("the three default loggers", 1.0)):
        cpu_shares, wall_shares = found[what]
        n = f"{epochs} epochs of {int(data.x.shape[0]):,} images, fixed costs included"
        rows += [
            judged(f"11. {what}, demo CNN, TensorBoard + MLflow: added CPU over {n}, % of "
                   "plain", cpu_shares, "%", limit),
            judged(f"11. {what}: the training thread's added wall (setup, on_epoch_end, drain "
                   "at train end), % of plain", wall_shares, "%", limit),
        ]  # fmt: skip
    return rows
