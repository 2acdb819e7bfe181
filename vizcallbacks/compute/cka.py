"""Centered kernel alignment (CKA) between representations, in numpy.

Linear CKA (Kornblith et al., ICML 2019) compares two layers through the Gram matrices of their
features over the same ``n`` examples, ``K = X Xᵀ``: invariant to orthogonal transforms and
scaling of either, not to other invertible maps. Both estimators are written as an inner
product of centred, unit-norm Grams, so a whole layer x layer matrix is one matrix product:

- biased (``debiased=False``): ``HKH`` with ``H = I - 11ᵀ/n``, the plain HSIC;
- debiased: the U-centred Gram (diagonal zeroed, Székely & Rizzo 2014), whose inner product over
  ``n(n-3)`` is the unbiased HSIC estimator of Song et al. (2012), as Nguyen et al. (ICLR 2021)
  use it.

The logger's Grams (:func:`centered_gram`) are float32 products of centred features, the costly
part; centring, normalizing and the notebook's :func:`cka` run in float64.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from typing import Any

import numpy as np

__all__ = [
    "MAX_POOLED_SIDE",
    "centered_gram",
    "cka",
    "cka_from_grams",
    "cross_cka",
    "features",
    "pool_spatial",
    "probe_hash",
    "unit_centered",
]

MAX_POOLED_SIDE = 8  # a reduced layer's spatial axes are average-pooled to at most this many bins


def features(values: np.ndarray) -> np.ndarray:
    """``(n, ...)`` → ``(n, d)`` float64: one flattened row of features per example."""
    array = np.asarray(values)
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(
            f"features must be (n, ...) with one row per example, n ≥ 1. Received shape "
            f"{array.shape}; for one feature per example pass values[:, None]."
        )
    return array.reshape(array.shape[0], -1).astype(np.float64, copy=False)


def centered_gram(values: np.ndarray) -> np.ndarray:
    """The Gram matrix ``(n, n)`` float64 of features ``(n, ...)`` centred over the examples:
    ``H X Xᵀ H`` with ``H = I - 11ᵀ/n``, what both CKA estimators compare.

    The product runs in float32 (half the cost of float64) on features centred first: centring
    after the product would subtract nearly equal large numbers (ReLU features are all positive)
    and lose the digits float32 kept. One BLAS thread: on shared cores, extra threads spin-wait
    and cost several times the CPU.
    """
    x = np.asarray(values, dtype=np.float32).reshape(len(values), -1)
    x = x - x.mean(axis=0, dtype=np.float64).astype(np.float32)
    with _one_blas_thread():
        product = x @ x.T  # numpy computes a product with its own transpose as a symmetric update
    return product.astype(np.float64)


def _one_blas_thread() -> contextlib.AbstractContextManager[object]:
    controller = _blas_controller()
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1)


@functools.cache
def _blas_controller() -> Any:
    """threadpoolctl's view of the BLAS libraries loaded, found once: finding them reads the
    process's memory map (milliseconds a call). None without threadpoolctl (an optional speed-up
    that scikit-learn brings)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController().select(user_api="blas")


def _check_gram(k: np.ndarray, debiased: bool) -> np.ndarray:
    k = np.asarray(k, dtype=np.float64)
    least = 4 if debiased else 2
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] < least:
        raise ValueError(
            f"a Gram matrix must be square (n, n) with n ≥ {least} examples"
            f"{' (the debiased estimator divides by n - 3)' if debiased else ''}. "
            f"Received shape {k.shape}"
        )
    return k


def unit_centered(k: np.ndarray, debiased: bool = False) -> np.ndarray:
    """The centred Gram (``HKH``, or U-centred when ``debiased``) scaled to unit Frobenius norm;
    all zeros when the representation does not vary over the examples (CKA is then NaN)."""
    k = _check_gram(k, debiased)
    n = k.shape[0]
    if debiased:
        k = k.copy()
        np.fill_diagonal(k, 0.0)
        rows = k.sum(axis=0)
        centered = k - rows[:, None] / (n - 2) - rows[None, :] / (n - 2)
        centered += rows.sum() / ((n - 1) * (n - 2))
        np.fill_diagonal(centered, 0.0)
    else:
        means = k.mean(axis=0)
        centered = k - means[:, None] - means[None, :] + means.mean()
    norm = np.sqrt(np.sum(centered * centered))
    # Features that do not vary leave rounding noise, not a direction: call it no signal.
    scale = np.abs(k).max() if k.size else 0.0
    if not np.isfinite(norm) or norm <= 1e-12 * max(scale, 1e-300) * n:
        return np.zeros_like(centered)
    return centered / norm


def cka_from_grams(k: np.ndarray, l: np.ndarray, debiased: bool = False) -> float:  # noqa: E741
    """CKA of two representations given their Gram matrices over the same examples."""
    a, b = unit_centered(k, debiased), unit_centered(l, debiased)
    if a.shape != b.shape:
        raise ValueError(
            f"the Gram matrices must be over the same examples. Received {k.shape} and {l.shape}"
        )
    if not a.any() or not b.any():
        return float("nan")
    return float(np.clip(np.sum(a * b), -1.0, 1.0))


def cka(a: np.ndarray, b: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA between features ``a`` ``(n, ...)`` and ``b`` ``(n, ...)`` of the same ``n``
    examples: 1 for representations equal up to rotation and scale; NaN when one is constant.

    ``debiased=True`` uses the unbiased HSIC estimator (Song et al. 2012), needing n ≥ 4.
    """
    xa, xb = features(a), features(b)
    if xa.shape[0] != xb.shape[0]:
        raise ValueError(
            f"a and b must hold the same examples (the same first axis). Received shapes "
            f"{np.shape(a)} and {np.shape(b)}"
        )
    return cka_from_grams(xa @ xa.T, xb @ xb.T, debiased)


def cross_cka(units_a: np.ndarray, units_b: np.ndarray) -> np.ndarray:
    """CKA of every layer in ``units_a`` ``(La, n, n)`` with every one in ``units_b``
    ``(Lb, n, n)`` (unit centred Grams): ``(La, Lb)``, NaN where a layer does not vary."""
    flat_a = units_a.reshape(units_a.shape[0], -1)
    flat_b = units_b.reshape(units_b.shape[0], -1)
    matrix = np.clip(flat_a @ flat_b.T, -1.0, 1.0)
    dead = np.logical_or.outer(~flat_a.any(axis=1), ~flat_b.any(axis=1))
    matrix[dead] = np.nan
    return matrix


def _pooling_matrix(size: int, max_side: int) -> np.ndarray:
    """``(max_side, size)`` float32: row i averages the i-th of ``max_side`` near-equal bins."""
    edges = np.linspace(0, size, max_side + 1).round().astype(np.int64)
    bins = np.searchsorted(edges, np.arange(size), side="right") - 1
    matrix = (bins[None, :] == np.arange(max_side)[:, None]).astype(np.float32)
    return matrix / matrix.sum(axis=1, keepdims=True)


def pool_spatial(values: np.ndarray, max_side: int = MAX_POOLED_SIDE) -> np.ndarray:
    """Average-pool the spatial axes of channels-last ``(n, *spatial, C)`` features to at most
    ``max_side`` near-equal bins each (adaptive pooling); other shapes are returned as they are.

    Pooling is linear and acts on each channel alike, so a 1x1 convolution's orthogonal channel
    mix commutes with it: such two layers still have CKA 1 after reduction. Each axis is pooled
    by one matrix product (BLAS), several times faster than summing bin by bin.
    """
    array: np.ndarray = np.asarray(values, dtype=np.float32)
    if all(size <= max_side for size in array.shape[1:-1]):
        return array
    with _one_blas_thread():
        for axis in range(1, array.ndim - 1):
            size = array.shape[axis]
            if size <= max_side:
                continue
            before, after = array.shape[:axis], array.shape[axis + 1 :]
            rows = array.reshape(int(np.prod(before)), size, int(np.prod(after)))
            pooled = np.matmul(_pooling_matrix(size, max_side), rows)
            array = pooled.reshape(*before, max_side, *after)
    return array


def probe_hash(images: np.ndarray) -> str:
    """A short hash of the probe set (shape and float32 values): two runs are comparable by CKA
    only when they saw the same examples in the same order."""
    array = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
    digest = hashlib.sha256(repr(array.shape).encode() + array.tobytes())
    return digest.hexdigest()[:16]
