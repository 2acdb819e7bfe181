"""Image folders for the binary experiments: check a user's folder, or write a real stand-in.

Keras' ``image_dataset_from_directory`` reads ``<root>/<class>/**/*.{jpg,png,bmp,gif}`` and stops
mid-epoch at the first file it cannot decode, so every file is decoded once here, before training,
and Keras reads a mirror of the good ones when some are bad.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.datasets import DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "DataFolderError",
    "ImageFolder",
    "binary_image_folder",
    "check_image_folder",
    "default_cache_dir",
    "image_datasets",
    "lfw_folder",
    "load_images",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")  # what Keras' directory loader reads
MIN_IMAGES = 10  # so that a 20 % validation split holds at least two images


class DataFolderError(DataError):
    """An image folder that cannot be trained on: names the path, what was found and the layout."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"--data {str(path)!r} {problem}. Expected one sub-folder per class holding "
            f"{'/'.join(IMAGE_SUFFIXES)} images, e.g. {path / 'cats' / 'cat.1.jpg'} and "
            f"{path / 'dogs' / 'dog.1.jpg'}."
        )


@dataclass(frozen=True)
class ImageFolder:
    """A checked folder: ``root`` is what Keras reads (the user's folder or a clean mirror)."""

    root: Path
    class_names: tuple[str, ...]
    files: dict[str, list[Path]]
    source: str

    def describe(self) -> str:
        counts = ", ".join(f"{len(self.files[c])} {c}" for c in self.class_names)
        return f"{self.source}: {counts}"


def default_cache_dir() -> Path:
    """Where stand-in data is written: ``$XDG_CACHE_HOME/vizcallbacks`` or ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vizcallbacks"


def _decode_error(path: Path) -> str | None:
    """None when TensorFlow decodes ``path`` the way Keras' loader will, else the reason."""
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
    except (tf.errors.OpError, OSError) as err:
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:120]}"
    return None


def _class_files(path: Path) -> dict[str, list[Path]]:
    try:
        class_dirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as err:
        raise DataFolderError(path, f"cannot be listed ({err})") from err
    return {
        d.name: sorted(
            f for f in d.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()
        )
        for d in class_dirs
    }


def _check_layout(path: Path, good: dict[str, list[Path]], n_classes: int) -> None:
    classes = [c for c, files in good.items() if files]
    if len(classes) == n_classes:
        return
    if not classes:
        loose = [f for f in path.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES]
        if loose:
            problem = f"holds {len(loose)} images directly but no class sub-folders"
        elif good:
            problem = f"has sub-folders ({', '.join(good)}) but no readable image in them"
        else:
            problem = "is empty"
        raise DataFolderError(path, problem)
    found = ", ".join(f"{c!r} ({len(good[c])} images)" for c in classes)
    problem = f"has {len(classes)} class folder(s) with images ({found}); this experiment needs "
    problem += f"exactly {n_classes}"
    empty = [c for c in good if not good[c]]
    if empty:
        problem += f" (no readable image in {', '.join(map(repr, empty))})"
    nested = [c for c in classes if sum(1 for v in _class_files(path / c).values() if v) >= 2]
    if nested:
        problem += f"; did you mean --data {path / nested[0]}?"
    raise DataFolderError(path, problem)


def check_image_folder(
    path: str | Path, n_classes: int = 2, max_samples: int | None = None, source: str = ""
) -> ImageFolder:
    """Decode every image under ``path`` once; skip bad ones with a warning; check the layout.

    Raises ``DataFolderError`` (before any training) when the folder is missing, empty, or does
    not hold ``n_classes`` class folders with readable images. ``max_samples`` keeps that many
    images in all, balanced over the classes.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataFolderError(path, "does not exist" if not path.exists() else "is not a folder")
    candidates = _class_files(path)
    everything = [f for files in candidates.values() for f in files]
    with ThreadPoolExecutor(max_workers=4) as pool:
        errors = dict(zip(everything, pool.map(_decode_error, everything), strict=True))
    bad = {f: e for f, e in errors.items() if e is not None}
    if bad:
        shown = "; ".join(f"{f.relative_to(path)} ({e})" for f, e in list(bad.items())[:5])
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        log.warning("Skipping %d unreadable image file(s) in %s: %s%s", len(bad), path, shown, more)
    good = {c: [f for f in files if f not in bad] for c, files in candidates.items()}
    _check_layout(path, good, n_classes)
    good = {c: files for c, files in good.items() if files}
    if max_samples is not None:
        per_class = max(1, max_samples // n_classes)
        good = {c: files[:per_class] for c, files in good.items()}
    total = sum(len(files) for files in good.values())
    if total < MIN_IMAGES:
        raise DataFolderError(
            path,
            f"has {total} usable images; at least {MIN_IMAGES} are needed (raise --max-samples)",
        )
    trimmed = total < len(everything) - len(bad)
    root = _mirror(path, good) if bad or trimmed else path
    return ImageFolder(root, tuple(good), good, source or f"--data {path}")


def _mirror(path: Path, good: dict[str, list[Path]]) -> Path:
    """A temporary ``<class>/<file>`` tree of links to the good files (copies where links fail)."""
    root = Path(tempfile.mkdtemp(prefix="vizcallbacks-data-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    for cls, files in good.items():
        (root / cls).mkdir()
        for f in files:
            target = root / cls / "__".join(f.relative_to(path / cls).parts)
            try:
                target.symlink_to(f.resolve())
            except OSError:
                shutil.copy2(f, target)
    return root


def lfw_folder(cache_dir: Path | None = None) -> Path:
    """scikit-image's real LFW subset as ``train/{faces,non_faces}/*.png``, 150x150 RGB.

    ``data.lfw_subset()`` holds 100 faces then 100 non-faces, 25x25 grey in [0, 1]; they are
    written once into ``cache_dir`` (default ``default_cache_dir()``) and reused.
    """
    root = (cache_dir or default_cache_dir()) / "lfw_subset" / "train"
    if all(len(list((root / c).glob("*.png"))) == 100 for c in ("faces", "non_faces")):
        return root
    from PIL import Image
    from skimage import data, transform

    images = data.lfw_subset()
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root.parent))
    for i, image in enumerate(images):
        cls = "faces" if i < 100 else "non_faces"
        (staging / cls).mkdir(exist_ok=True)
        big = transform.resize(image, (150, 150), order=1)
        rgb = np.repeat(np.round(big * 255).astype(np.uint8)[..., None], 3, axis=-1)
        Image.fromarray(rgb).save(staging / cls / f"{cls}_{i % 100:03d}.png")
    shutil.rmtree(root, ignore_errors=True)
    try:
        staging.rename(root)
    except OSError:  # another process wrote it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return root


def binary_image_folder(
    data: str | Path | None, max_samples: int | None = None, cache_dir: Path | None = None
) -> ImageFolder:
    """``--data`` checked, or the LFW faces-vs-non-faces stand-in when no folder is given."""
    if data is None:
        path = lfw_folder(cache_dir)
        source = f"scikit-image data.lfw_subset() faces vs non-faces, written to {path}"
    else:
        path, source = Path(data), f"--data {data}"
    folder = check_image_folder(path, 2, max_samples, source)
    log.info("Binary images from %s", folder.describe())
    return folder


def image_datasets(
    folder: ImageFolder, image_size: tuple[int, int], batch_size: int, seed: int = 0
) -> tuple[Any, Any]:
    """Training and validation ``tf.data`` sets (80/20) from Keras' directory loader.

    Images are float32 in [0, 255] and labels float ``(N, 1)``, as Keras loads them; each set
    has ``file_paths`` and ``class_names``.
    """
    import keras

    train, val = keras.utils.image_dataset_from_directory(
        folder.root,
        labels="inferred",
        label_mode="binary",
        class_names=list(folder.class_names),
        image_size=image_size,
        batch_size=batch_size,
        validation_split=0.2,
        subset="both",
        seed=seed,
        verbose=False,
    )
    return train, val


def load_images(paths: list[str], image_size: tuple[int, int]) -> np.ndarray:
    """Decode and resize ``paths`` exactly as the directory loader does: float32 in [0, 255]."""
    import tensorflow as tf

    images = [
        tf.image.resize(
            tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False),
            image_size,
        )
        for p in paths
    ]
    return np.stack([np.asarray(image, dtype=np.float32) for image in images])
