"""Two logged runs side by side: ``python -m vizcallbacks compare RUN_A RUN_B``.

Run A's image grid at a step beside run B's, with both runs' statistic curves below; the runs are
read back from MLflow by :mod:`vizcallbacks.sources.mlflow_runs`.
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

__all__ = ["FORMATS", "RunComparisonResult", "compare_runs", "image_format"]

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
        from PIL import Image

        target = Path(path)
        fmt = image_format(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(self.picture.image)
        if fmt == "JPEG":
            picture.convert("RGB").save(target, format=fmt, quality=92)
        else:
            picture.save(target, format=fmt, optimize=True)
        return target

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


def _statistic_key(key: str, stat: str, a: LoggedRun, b: LoggedRun) -> str | None:
    """``activation_mean/<layer>`` for the layer an image key names (``activations/vgg16/c1/p``
    → ``vgg16/c1`` if that metric exists), or None when neither run logged it."""
    for layer in layer_candidates(key):
        candidate = f"{stat}/{layer}"
        if candidate in a.metrics or candidate in b.metrics:
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
