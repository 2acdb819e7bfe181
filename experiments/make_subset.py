"""Rebuild ``data/fashion_mnist_subset.npz`` from the Debian Fashion-MNIST files.

The subset lets the README demo run on a machine with neither internet nor the Debian package:
balanced, it keeps test image 2000 (a bag) and the first test image of each class, the probe
that ``fashion_cnn`` uses. Run ``python -m experiments.make_subset``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from experiments.datasets import DEBIAN_FASHION_DIR, FASHION_SUBSET, ImageSplit, read_idx_dir

__all__ = ["balanced_ids", "main", "subset_arrays"]

log = logging.getLogger(__name__)


def balanced_ids(
    labels: np.ndarray, per_class: int, keep: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """Sorted indices: ``per_class`` of each label, chosen at random but including ``keep``."""
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        kept = [i for i in keep if labels[i] == c]
        rest = rng.permutation(np.setdiff1d(members, kept))[: per_class - len(kept)]
        chosen.append(np.concatenate([kept, rest]).astype(np.int64))
    return np.sort(np.concatenate(chosen))


def subset_arrays(split: ImageSplit, n_train: int, n_test: int) -> dict[str, np.ndarray]:
    """The arrays of the shipped subset, with ``train_ids``/``test_ids`` into the full set."""
    rng = np.random.default_rng(0)
    firsts = tuple(int(np.argmax(split.y_test == c)) for c in range(10))
    train_ids = balanced_ids(split.y_train, n_train // 10, (), rng)
    test_ids = balanced_ids(split.y_test, n_test // 10, (2000, *firsts), rng)
    return {
        "x_train": split.x_train[train_ids],
        "y_train": split.y_train[train_ids],
        "x_test": split.x_test[test_ids],
        "y_test": split.y_test[test_ids],
        "train_ids": train_ids,
        "test_ids": test_ids,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEBIAN_FASHION_DIR)
    parser.add_argument("--out", type=Path, default=FASHION_SUBSET)
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=500)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    arrays = subset_arrays(read_idx_dir(args.source, str(args.source)), args.train, args.test)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    log.info("wrote %s (%d bytes)", args.out, args.out.stat().st_size)


if __name__ == "__main__":
    main()
