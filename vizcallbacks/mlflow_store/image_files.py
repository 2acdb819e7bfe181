"""The names ``log_image`` gives the image files of a run: the writer uploads its images under
them (so the run page shows them as its own), the readers find a run's images by them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

__all__ = [
    "IMAGES_DIR",
    "LoggedImage",
    "image_artifact_name",
    "images_on_server",
    "logged_images",
    "parse_image_name",
    "thumbnail_name",
]

IMAGES_DIR = "images"  # the run's artifact folder the run page reads image cards from
# MLflow 3 stores log_image(key=, step=) as images/<key, / as ~ or #>+step+<n>+timestamp+<ms>+...
# (older MLflow used % and #): image_artifact_name() writes these names, parse_image_name() reads
_IMAGE_FILE = re.compile(
    r"^(?P<key>.+?)[+%]step[+%](?P<step>-?\d+)[+%]timestamp[+%](?P<ts>\d+)[+%][^+%]+\.png$"
)


class LoggedImage(NamedTuple):
    """One image file ``log_image`` stored: its key, step, timestamp and artifact path."""

    key: str
    step: int
    timestamp: int
    path: str


def image_artifact_name(key: str, step: int, timestamp: int, uuid: str) -> str:
    """The artifact path ``log_image(key=, step=, timestamp=)`` gives an image (MLflow 3.17), so
    images we upload ourselves appear on the run page's image cards like MLflow's own."""
    return f"{IMAGES_DIR}/{key.replace('/', '~')}+step+{step}+timestamp+{timestamp}+{uuid}.png"


def thumbnail_name(image_path: str) -> str:
    """The path of the ``+compressed.webp`` preview the run page shows for image ``image_path``."""
    return f"{image_path.removesuffix('.png')}+compressed.webp"


def parse_image_name(path: str) -> LoggedImage | None:
    """The key, step and timestamp an image artifact's name carries (either separator), or None
    for any other file (a ``+compressed.webp`` preview)."""
    match = _IMAGE_FILE.match(posixpath.basename(path))
    if not match:
        return None
    key = match["key"].replace("~", "/").replace("#", "/")
    return LoggedImage(key, int(match["step"]), int(match["ts"]), path)


def logged_images(client: Any, run_id: str) -> Iterator[LoggedImage]:
    """Every image stored under ``log_image``'s names in the run (not the ``+compressed.webp``
    previews), whether ``log_image`` or the writer's own upload
    (``vizcallbacks.writers.mlflow.images``) stored it."""
    for info in client.list_artifacts(run_id, IMAGES_DIR):
        image = parse_image_name(info.path)
        if image is not None:
            yield image


def images_on_server(client: Any, run_id: str) -> set[tuple[str, int, int]]:
    """(key, step, timestamp) of every image stored under ``log_image``'s names in the run."""
    return {(image.key, image.step, image.timestamp) for image in logged_images(client, run_id)}
