"""Faithfulness of attribution maps: does the model's probability follow what a map ranks first?

Deletion (Petsiuk et al., 2018): the explained class's probability as the pixels a map ranks
highest are set to ``baseline``, in ``steps`` equal parts; a faithful map makes it fall fast (a low
area under the curve). Insertion: the same pixels put back into a blurred (or constant) copy; a
faithful map makes it rise fast (a high area). The curve's x axis is the share of pixels changed,
``floor(linspace(0, P, steps + 1))`` of the ``P`` pixels (all channels of a pixel together); the
area is the trapezoid rule over [0, 1], as Xplique's ``Deletion``/``Insertion``. MuFidelity (Bhatt
et al., 2020): the Pearson correlation, over random subsets of ``subset`` of the pixels, between
the map's sum over the subset and the probability's drop when the subset is set to ``baseline``.

Every perturbed image is built in numpy a batch at a time and scored by
:class:`~vizcallbacks.compute.attribution.perturbed.PerturbedScores` (one compiled call per batch,
built once per model; an image met before is scored once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vizcallbacks.compute.attribution.perturbed import PerturbedScores, scorer
from vizcallbacks.compute.attribution.pipeline import (
    check_count,
    check_number,
    several_inputs_error,
)
from vizcallbacks.compute.attribution.scores import ClassIndex
from vizcallbacks.compute.probe import read_probe
from vizcallbacks.render.faithfulness import RANDOM_LABEL

__all__ = [
    "BLUR_SIGMA",
    "BLUR_SIZE",
    "FAITHFULNESS_METRICS",
    "RANDOM_MAP_SEED",
    "FaithfulnessCurve",
    "MethodFaithfulness",
    "blurred",
    "causal_curve",
    "deletion_curve",
    "faithfulness_of",
    "insertion_curve",
    "mu_fidelity",
    "mu_fidelity_scores",
    "random_maps",
]

FAITHFULNESS_METRICS = ("deletion", "insertion", "mu_fidelity")
RANDOM_MAP_SEED = 1806  # the random-map line draws the same maps every step and backend
BLUR_SIZE, BLUR_SIGMA = 11, 5.0  # RISE's insertion start: an 11-tap Gaussian of std 5 pixels


@dataclass(frozen=True)
class FaithfulnessCurve:
    """A deletion or insertion curve per image: ``probabilities`` float64 ``(N, steps + 1)`` of
    the explained classes ``class_index`` ``(N,)`` at the shares ``fractions`` ``(steps + 1,)``
    of pixels changed, and each curve's area ``auc`` ``(N,)`` (trapezoids over [0, 1])."""

    fractions: np.ndarray
    probabilities: np.ndarray
    auc: np.ndarray
    class_index: np.ndarray


@dataclass(frozen=True)
class MethodFaithfulness:
    """Every method's faithfulness on a probe, random maps under ``RANDOM_LABEL``: ``curves``
    metric (deletion, insertion) → label → curve; ``mu_fidelity`` label → ``(N,)`` scores."""

    curves: dict[str, dict[str, FaithfulnessCurve]]
    mu_fidelity: dict[str, np.ndarray]


def _checked_maps(images: np.ndarray, maps: Any) -> np.ndarray:
    values = np.asarray(maps, dtype=np.float64)
    spatial = images.shape[1:-1]
    if values.shape != (images.shape[0], *spatial):
        raise ValueError(
            f"maps must hold one map per image, shaped like its pixels without the channels: "
            f"{(images.shape[0], *spatial)}. Received maps of shape {values.shape}"
        )
    if not np.isfinite(values).all():
        raise ValueError("maps must be finite; received NaN or infinite values.")
    return values


def blurred(images: np.ndarray, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """``images`` ``(N, *spatial, C)`` blurred along every spatial axis by a ``size``-tap
    Gaussian of std ``sigma`` pixels, zeros beyond the border (RISE's insertion start)."""
    taps = np.arange(size) - size // 2
    kernel = np.exp(-(taps**2) / (2.0 * sigma**2))
    kernel /= kernel.sum()
    out = np.asarray(images, dtype=np.float64)
    for axis in range(1, out.ndim - 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (size // 2, size // 2)
        windows = sliding_window_view(np.pad(out, pad), size, axis=axis)
        out = windows @ kernel
    return out.astype(np.float32)


def random_maps(shape: tuple[int, ...], seed: int = RANDOM_MAP_SEED) -> np.ndarray:
    """Uniformly random maps of ``shape``, the same for the same ``seed``: chance's ranking."""
    return np.random.default_rng(seed).random(shape)


def causal_curve(
    scores: PerturbedScores,
    images: np.ndarray,
    maps: np.ndarray,
    end: np.ndarray,
    steps: int,
    classes: np.ndarray,
) -> FaithfulnessCurve:
    """Each image's most-attributed pixels (by ``maps``, ties in pixel order) replaced by those of
    ``end`` in ``steps`` equal parts, and the explained classes' probability at each part."""
    n, channels = images.shape[0], images.shape[-1]
    start = images.reshape(n, -1, channels)
    whole = end.shape == images.shape  # else one value (a baseline), not copied per image
    target = end.reshape(n, -1, channels) if whole else end
    pixels = start.shape[1]
    order = np.argsort(-maps.reshape(n, -1), axis=1, kind="stable")
    rank = np.empty(order.shape, np.int32)
    np.put_along_axis(rank, order, np.arange(pixels, dtype=np.int32)[None], axis=1)
    changed = np.linspace(0, pixels, steps + 1).astype(np.int32)
    per_image = steps + 1

    def batch(rows: np.ndarray) -> np.ndarray:
        image, step = rows // per_image, rows % per_image
        mask = (rank[image] < changed[step][:, None])[..., None]
        ends = target[image] if whole else target
        return np.where(mask, ends, start[image]).reshape(-1, *images.shape[1:])

    p, _ = scores.probabilities(n * per_image, batch, np.repeat(classes, per_image))
    curves = p.reshape(n, per_image)
    auc = ((curves[:, :-1] + curves[:, 1:]) / 2.0).mean(axis=1)
    return FaithfulnessCurve(changed / pixels, curves, auc, classes.astype(np.int64))


def mu_fidelity_scores(
    scores: PerturbedScores,
    images: np.ndarray,
    maps: np.ndarray,
    subset: float,
    samples: int,
    baseline: float,
    seed: int,
    classes: np.ndarray,
) -> np.ndarray:
    """MuFidelity per image ``(N,)``: Pearson correlation over ``samples`` random pixel subsets
    (``round(subset·P)`` pixels each, drawn with ``seed``, the same for every image) of the map's
    sum over the subset and the probability's drop when the subset is set to ``baseline``."""
    n, channels = images.shape[0], images.shape[-1]
    flat = images.reshape(n, -1, channels)
    pixels = flat.shape[1]
    size = min(pixels, max(1, round(subset * pixels)))
    rng = np.random.default_rng(seed)
    chosen = np.zeros((samples, pixels), dtype=bool)
    for row in chosen:
        row[rng.permutation(pixels)[:size]] = True

    def batch(rows: np.ndarray) -> np.ndarray:
        image, sample = rows // samples, rows % samples
        hidden = chosen[sample][..., None]
        return np.where(hidden, baseline, flat[image]).reshape(-1, *images.shape[1:])

    full, _ = scores.probabilities(n, lambda rows: images[rows], classes)
    perturbed, _ = scores.probabilities(n * samples, batch, np.repeat(classes, samples))
    drops = full[:, None] - perturbed.reshape(n, samples)
    sums = maps.reshape(n, -1) @ chosen.T.astype(np.float64)  # (N, samples)
    return np.array([_pearson(a, b) for a, b in zip(sums, drops, strict=True)])


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is constant (nothing to correlate)."""
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / norm) if norm > 1e-12 else 0.0


def _prepared(
    model: keras.Model, images: Any, maps: Any, output: str | int | None
) -> tuple[PerturbedScores, np.ndarray, np.ndarray]:
    probe = read_probe(images, model)
    if getattr(probe, "inputs", None) is not None:
        raise several_inputs_error("faithfulness")
    probe = np.asarray(probe, dtype=np.float32)
    return scorer(model, probe.shape[1:], output), probe, _checked_maps(probe, maps)


def deletion_curve(
    model: keras.Model,
    images: Any,
    maps: Any,
    steps: int = 20,
    baseline: float = 0.0,
    class_index: ClassIndex = None,
    output: str | int | None = None,
) -> FaithfulnessCurve:
    """The deletion curve of ``maps`` ``(N, *spatial)`` (any method's, higher = more important)
    for ``images``: the probability of the explained class (``None``: the predicted one) as the
    top-ranked pixels are set to ``baseline`` in ``steps`` equal parts. Lower area is better."""
    steps = check_count("steps", steps, 1)
    baseline = check_number("baseline", baseline)
    scores, probe, values = _prepared(model, images, maps, output)
    classes = scores.classes(probe, class_index)
    return causal_curve(scores, probe, values, np.full(1, baseline, np.float32), steps, classes)


def insertion_curve(
    model: keras.Model,
    images: Any,
    maps: Any,
    steps: int = 20,
    start: str | float = "blur",
    class_index: ClassIndex = None,
    output: str | int | None = None,
) -> FaithfulnessCurve:
    """The insertion curve: the top-ranked pixels of ``images`` put back, in ``steps`` equal
    parts, into ``start``: ``"blur"`` (a Gaussian blur of each image, as RISE) or a constant.
    Higher area is better; its last point is the model's probability for the image itself."""
    steps = check_count("steps", steps, 1)
    if not (isinstance(start, str) and start == "blur"):
        if isinstance(start, str):
            raise ValueError(f"start must be 'blur' or a number. Received: start={start!r}")
        start = check_number("start", start)
    scores, probe, values = _prepared(model, images, maps, output)
    classes = scores.classes(probe, class_index)
    origin = blurred(probe) if start == "blur" else np.full_like(probe, start)
    return causal_curve(scores, origin, values, probe, steps, classes)


def mu_fidelity(
    model: keras.Model,
    images: Any,
    maps: Any,
    subset: float = 0.2,
    samples: int = 64,
    baseline: float = 0.0,
    seed: int = 0,
    class_index: ClassIndex = None,
    output: str | int | None = None,
) -> np.ndarray:
    """MuFidelity of ``maps`` per image, float64 ``(N,)`` in [-1, 1]: how well the map's sum over
    a random ``subset`` share of the pixels predicts the probability's drop when they are set to
    ``baseline`` (``samples`` subsets drawn with ``seed``). Higher is better."""
    subset = check_number("subset", subset, 0.0)
    if not 0.0 < subset <= 1.0:
        raise ValueError(f"subset must be a share of the pixels in (0, 1]. Received: {subset}")
    samples = check_count("samples", samples, 2)
    baseline = check_number("baseline", baseline)
    seed = check_count("seed", seed, 0)
    scores, probe, values = _prepared(model, images, maps, output)
    classes = scores.classes(probe, class_index)
    return mu_fidelity_scores(scores, probe, values, subset, samples, baseline, seed, classes)


def faithfulness_of(
    scores: PerturbedScores,
    probe: np.ndarray,
    maps: dict[str, np.ndarray],
    classes: np.ndarray,
    metrics: tuple[str, ...],
    steps: int = 20,
) -> MethodFaithfulness:
    """``metrics`` of each method's ``maps`` ``(N, *spatial)`` and of random maps, all methods'
    perturbed images in one stream of batches (deletion to 0, insertion from the blur)."""
    labelled = {**maps, RANDOM_LABEL: random_maps(probe.shape[:-1])}
    labels, n = list(labelled), probe.shape[0]
    images = np.concatenate([probe] * len(labels))
    stacked = np.concatenate([np.asarray(m, np.float64) for m in labelled.values()])
    repeated = np.tile(classes, len(labels))
    found: dict[str, FaithfulnessCurve] = {}
    if "deletion" in metrics:
        found["deletion"] = causal_curve(
            scores, images, stacked, np.zeros(1, np.float32), steps, repeated
        )
    if "insertion" in metrics:
        start = np.concatenate([blurred(probe)] * len(labels))
        found["insertion"] = causal_curve(scores, start, stacked, images, steps, repeated)
    curves = {
        metric: {
            label: FaithfulnessCurve(
                curve.fractions,
                curve.probabilities[i * n : (i + 1) * n],
                curve.auc[i * n : (i + 1) * n],
                curve.class_index[i * n : (i + 1) * n],
            )
            for i, label in enumerate(labels)
        }
        for metric, curve in found.items()
    }
    mu: dict[str, np.ndarray] = {}
    if "mu_fidelity" in metrics:
        values = mu_fidelity_scores(scores, images, stacked, 0.2, 64, 0.0, 0, repeated)
        mu = {label: values[i * n : (i + 1) * n] for i, label in enumerate(labels)}
    return MethodFaithfulness(curves, mu)
