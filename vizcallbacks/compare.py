"""Logged runs side by side: ``python -m vizcallbacks compare RUN_A RUN_B`` (or N runs).

Two runs: run A's image grid at a step beside run B's, with both runs' statistic curves below. N
runs (a sweep, or ``--experiment NAME``): a row per run and a column per chosen layer at one step,
every run's curve on one plot below. The runs are read back from MLflow by
:mod:`vizcallbacks.sources.mlflow_runs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vizcallbacks.sources.mlflow_runs import (
    LoggedRun,
    RunLookupError,
    listing,
    open_run,
    steps_text,
)
from vizcallbacks.tags import layer_candidates

__all__ = [
    "FORMATS",
    "RunComparisonResult",
    "SweepComparison",
    "compare_runs",
    "compare_sweep",
    "experiment_runs",
    "image_format",
]

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # suffix -> Pillow format


def image_format(path: str | Path) -> str:
    """The Pillow format ``path``'s suffix names; ``ValueError`` naming the choices otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"{path}: cannot write a {suffix or 'suffix-less'} file; name the output "
            f"{' or '.join(FORMATS)}"
        )
    return FORMATS[suffix]


def _save(image: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    target = Path(path)
    fmt = image_format(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(image)
    if fmt == "JPEG":
        picture.convert("RGB").save(target, format=fmt, quality=92)
    else:
        picture.save(target, format=fmt, optimize=True)
    return target


@dataclass(frozen=True)
class RunComparisonResult:
    """What :func:`compare_runs` drew: the picture, the key and step, the curves' data."""

    picture: Any  # vizcallbacks.render.compare.RunComparison
    runs: tuple[LoggedRun, LoggedRun]
    key: str
    step: int
    metric: str | None  # the statistic drawn below, e.g. activation_mean/conv1
    curves: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    grids: tuple[np.ndarray, np.ndarray]  # as downloaded, before scaling

    def save(self, path: str | Path) -> Path:
        """Write the picture as PNG or JPEG, as the suffix says (creating the folder)."""
        return _save(self.picture.image, path)

    def summary(self) -> str:
        """One line per run: the grid's size and the statistic at the step and at the end."""
        lines = [f"{self.key} at step {self.step}"]
        for run, grid, (steps, values) in zip(self.runs, self.grids, self.curves, strict=True):
            text = f"  {run.label}: grid {grid.shape[1]}x{grid.shape[0]} px"
            if self.metric and len(steps):
                at = dict(zip(steps.tolist(), values.tolist(), strict=True))
                if self.step in at:
                    text += f", {self.metric} {at[self.step]:.4g} at step {self.step}"
                if int(steps[-1]) != self.step:
                    text += f" ({values[-1]:.4g} at step {int(steps[-1])})"
            lines.append(text)
        return "\n".join(lines)


def _default_key(a: LoggedRun, b: LoggedRun) -> str:
    """The first ``activations/`` image key both runs have, else their first common key."""
    common = sorted(set(a.images) & set(b.images))
    if not common:
        raise RunLookupError(
            f"Runs {a.label} and {b.label} have no image key in common. Keys of {a.label}: "
            f"{listing(sorted(a.images)) or 'none'}; of {b.label}: "
            f"{listing(sorted(b.images)) or 'none'}."
        )
    first = [k for k in common if k.startswith("activations/")]
    return (first or common)[0]


def _statistic_key(key: str, stat: str, *runs: LoggedRun) -> str | None:
    """``activation_mean/<layer>`` for the layer an image key names (``activations/vgg16/c1/p``
    → ``vgg16/c1`` if that metric exists), or None when no run logged it."""
    for layer in layer_candidates(key):
        candidate = f"{stat}/{layer}"
        if any(candidate in run.metrics for run in runs):
            return candidate
    return None


def compare_runs(
    client: Any,
    run_a: str,
    run_b: str,
    key: str | None = None,
    step: int | None = None,
    stat: str = "activation_mean",
    scale: int | None = None,
) -> RunComparisonResult:
    """Run A's image ``key`` at ``step`` beside run B's, their ``stat`` curves below.

    ``key`` defaults to the first ``activations/...`` key both runs have; ``step`` to the last
    step both have it at; ``scale`` to the integer enlargement that makes the grids about 360
    pixels wide. Raises :class:`RunLookupError` naming what is available.
    """
    from vizcallbacks.render.compare import run_comparison, statistic_curves

    a, b = open_run(client, run_a), open_run(client, run_b)
    key = key or _default_key(a, b)
    steps_a, steps_b = a.steps(key), b.steps(key)
    if step is None:
        shared = sorted(set(steps_a) & set(steps_b))
        if not shared:
            raise RunLookupError(
                f"{key!r} has no step in common: {a.label} has steps {steps_text(steps_a)}, "
                f"{b.label} has {steps_text(steps_b)}. Pass --step."
            )
        step = shared[-1]
    grids = (a.image(key, step), b.image(key, step))
    metric = _statistic_key(key, stat, a, b)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.float64))
    curves = (
        a.metric(metric) if metric else empty,
        b.metric(metric) if metric else empty,
    )
    if scale is None:
        widest = max(g.shape[1] for g in grids)
        scale = int(np.clip(360 // max(widest, 1), 1, 8))
    top_width = 2 * (scale * max(g.shape[1] for g in grids) + 16)  # two halves, see render
    plot = None
    if metric:
        plot = statistic_curves(
            [(a.label, *curves[0]), (b.label, *curves[1])],
            ylabel=metric,
            mark_step=step,
            size=(max(top_width, 560), 260),
        )
    picture = run_comparison(
        grids[0],
        grids[1],
        labels=(f"A: {a.label}", f"B: {b.label}"),
        title=f"{key}  ·  step {step}",
        curves=plot,
        scale=scale,
    )
    return RunComparisonResult(picture, (a, b), key, step, metric, curves, grids)


@dataclass(frozen=True)
class SweepComparison:
    """What :func:`compare_sweep` drew: the picture, the runs, the image keys, step and curves."""

    image: np.ndarray  # uint8 (H, W, 3)
    runs: tuple[LoggedRun, ...]
    keys: tuple[str, ...]
    step: int
    metric: str | None
    curves: tuple[tuple[np.ndarray, np.ndarray], ...]

    @property
    def key(self) -> str:
        """The first layer's image key: the one whose statistic the curves show."""
        return self.keys[0]

    def save(self, path: str | Path) -> Path:
        """Write the picture as PNG or JPEG, as the suffix says (creating the folder)."""
        return _save(self.image, path)

    def summary(self) -> str:
        """One line per run: the statistic at the step."""
        lines = [f"{', '.join(self.keys)} at step {self.step}"]
        for run, (steps, values) in zip(self.runs, self.curves, strict=True):
            at = dict(zip(steps.tolist(), values.tolist(), strict=True))
            value = f": {self.metric} {at[self.step]:.4g}" if self.step in at else ""
            lines.append(f"  {run.label}{value}")
        return "\n".join(lines)


def experiment_runs(client: Any, name: str) -> list[str]:
    """The ids of experiment ``name``'s runs, oldest first; raise naming the experiments else."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        names = sorted(e.name for e in client.search_experiments())
        raise RunLookupError(f"No experiment {name!r}; there are: {listing(names) or 'none'}.")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    if not runs:
        raise RunLookupError(f"Experiment {name!r} has no runs.")
    return [r.info.run_id for r in runs]


def compare_sweep(
    client: Any,
    runs: list[str],
    layers: list[str] | None = None,
    step: int | None = None,
    stat: str = "activation_mean",
    scale: int | None = None,
) -> SweepComparison:
    """A row per run and a column per layer's ``activations/<layer>`` at ``step``, every run's
    ``stat`` curve of the first layer on one plot below.

    ``layers`` defaults to every layer all runs logged activations of; ``step`` to the last step
    all of them have. Raises :class:`RunLookupError` naming what is available.
    """
    from vizcallbacks.render.compare import run_layer_table, statistic_curves

    opened = [open_run(client, run) for run in runs]
    if layers:
        keys = [f"activations/{layer}" for layer in layers]
    else:
        keys = sorted(set.intersection(*(set(r.images) for r in opened)))
        keys = [k for k in keys if k.startswith("activations/")]
        if not keys:
            raise RunLookupError("The runs have no activations/ image key in common. Pass --key.")
    if step is None:
        shared = set.intersection(*(set(r.steps(k)) for r in opened for k in keys))
        if not shared:
            raise RunLookupError(f"{listing(keys)} have no step in common. Pass --step.")
        step = max(shared)
    cells = [[r.image(k, step) for k in keys] for r in opened]
    metric = _statistic_key(keys[0], stat, *opened)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.float64))
    curves = tuple(r.metric(metric) if metric else empty for r in opened)
    if scale is None:
        widest = max(c.shape[1] for row in cells for c in row)
        scale = int(np.clip(240 // max(widest, 1), 1, 8))
    plot = None
    if metric:
        series = [(r.label, *c) for r, c in zip(opened, curves, strict=True)]
        plot = statistic_curves(series, ylabel=metric, mark_step=step, size=(720, 300))
    image = run_layer_table(
        cells,
        [r.label for r in opened],
        [k.removeprefix("activations/") for k in keys],
        title=f"activations · step {step}",
        curves=plot,
        scale=scale,
    )
    return SweepComparison(image, tuple(opened), tuple(keys), step, metric, curves)
