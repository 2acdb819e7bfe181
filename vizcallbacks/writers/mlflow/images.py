"""Delivering spooled images to a run as MLflow's ``log_image`` would, minus its re-encoding.

Each image's PNG goes up byte for byte, with the ``+compressed.webp`` preview the run page's
image cards show, under the names ``log_image`` uses (``mlflow_store.image_files``): written
straight into a local artifact folder, or a round's images in one ``log_artifacts`` call per
folder of files instead of three requests per image.
Names are derived from (run, key, step, timestamp), so a replay after a crash writes the very
same files again: nothing is duplicated, no preview is left without its image.
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import re
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from vizcallbacks.mlflow_store.image_files import (
    IMAGES_DIR,
    image_artifact_name,
    images_on_server,
    thumbnail_name,
)
from vizcallbacks.mlflow_store.server import (
    is_rejection,
    is_remote,
    local_artifact_dir,
    short_error,
)
from vizcallbacks.writers.mlflow.spool import Spool

__all__ = [
    "FILE_WORKERS",
    "LOGGED_IMAGES_TAG",
    "image_uuid",
    "log_image",
    "send_images",
    "spooled_image",
    "thumbnail",
]

LOGGED_IMAGES_TAG = "mlflow.loggedImages"  # what log_image sets: the run page shows its images
FILE_WORKERS = 4  # parallel uploads to a tracking server
_LOG_IMAGE_KEY = re.compile(r"^[a-zA-Z0-9_\-./ ]+$")  # the keys log_image accepts

log = logging.getLogger("vizcallbacks")
_state_lock = threading.Lock()
_tagged_runs: set[tuple[str, str]] = set()  # (tracking URI, run id) that carry the tag
_fallback_told: list[bool] = []

Item = Mapping[str, Any]
Outcome = dict[int, BaseException | None]  # item id → None (arrived) or why not


def image_uuid(run_id: str, key: str, step: int, timestamp: int) -> str:
    """A uuid4-shaped id fixed by the image's identity: the same file name on every attempt."""
    digest = hashlib.sha256(f"{run_id}\0{key}\0{step}\0{timestamp}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def thumbnail(pixels: np.ndarray) -> bytes:
    """The WebP preview the run page's cards show, made from the picture's pixels when it is
    spooled (no PNG to decode): at most the size ``log_image`` gives it (``compress_image_size``:
    256 pixels on the longer side) but never enlarged (the browser does that as well), shrunk by
    area averaging and encoded with WebP's fastest method: a third to a tenth of
    ``log_image``'s cost, as good to the eye."""
    from mlflow.tracking.multimedia import COMPRESSED_IMAGE_SIZE
    from PIL import Image

    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    width, height = picture.size
    scale = COMPRESSED_IMAGE_SIZE / max(width, height)
    if scale < 1:
        size = (max(1, int(width * scale)), max(1, int(height * scale)))
        picture = picture.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    out = io.BytesIO()
    picture.save(out, format="WEBP", method=0)
    return out.getvalue()


def spooled_image(spool: Spool, item: Item) -> tuple[bytes, bytes]:
    """The PNG and the WebP preview spooled with an image item (back to back in its file)."""
    data = spool.read_payload(item)
    cut = len(data) - int(item["preview"])
    return data[:cut], data[cut:]


def send_images(
    client: Any, run_id: str, spool: Spool, items: Sequence[Item], parallel: bool = True
) -> Outcome:
    """Upload the spooled images ``items`` to ``run_id``; per item id, None or the error.

    The run is tagged ``mlflow.loggedImages`` once per process and run, before any upload. A
    tracking server gets up to ``FILE_WORKERS`` parallel batches when ``parallel``.
    """
    if not items:
        return {}
    try:
        _tag_run(client, run_id)
        local = local_artifact_dir(client, run_id)
    except Exception as err:
        return {it["id"]: err for it in items}
    if local is not None:
        return _write_images(spool, run_id, items, local / IMAGES_DIR)
    workers = FILE_WORKERS if parallel and is_remote(str(client.tracking_uri)) else 1
    groups = [items[i::workers] for i in range(workers) if items[i::workers]]
    outcome: Outcome = {}
    if len(groups) == 1:
        return _send_group(client, run_id, spool, groups[0])
    with ThreadPoolExecutor(len(groups), thread_name_prefix="vizcallbacks-mlflow") as pool:
        for result in pool.map(lambda g: _send_group(client, run_id, spool, g), groups):
            outcome.update(result)
    return outcome


def _tag_run(client: Any, run_id: str) -> None:
    """Set ``mlflow.loggedImages`` (the run page looks for images) unless done for this run."""
    run = (str(client.tracking_uri), run_id)
    with _state_lock:  # held while tagging: concurrent first inserts collide in SQL stores
        if run not in _tagged_runs:
            client.set_tag(run_id, LOGGED_IMAGES_TAG, "True")
            _tagged_runs.add(run)


def _stage(spool: Spool, run_id: str, item: Item, previews: Path, originals: Path) -> None:
    """Put the item's PNG and its preview in the folders (may be one), under their final names:
    the preview first, so an image that arrived always has its preview."""
    key, step, stamp = item["key"], item["step"], item["timestamp"]
    if not _LOG_IMAGE_KEY.match(key):
        raise ValueError(f"MLflow does not accept the image key {key!r}")
    name = image_artifact_name(key, step, stamp, image_uuid(run_id, key, step, stamp))
    png, preview = spooled_image(spool, item)
    # the preview first: its longer name is the one a file system may refuse
    (previews / posixpath.basename(thumbnail_name(name))).write_bytes(preview)
    (originals / posixpath.basename(name)).write_bytes(png)


def _write_images(spool: Spool, run_id: str, items: Sequence[Item], folder: Path) -> Outcome:
    """Each image and its preview written into the run's local artifact ``folder``."""
    outcome: Outcome = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return {it["id"]: err for it in items}
    for item in items:
        try:
            _stage(spool, run_id, item, folder, folder)
            outcome[item["id"]] = None
        except Exception as err:
            outcome[item["id"]] = err
    return outcome


def _send_group(client: Any, run_id: str, spool: Spool, items: Sequence[Item]) -> Outcome:
    """Stage ``items`` in a temporary folder and upload it: previews first, so an image on the
    server always has its preview. A refused upload falls back to ``log_image`` per image."""
    outcome: Outcome = {}
    with tempfile.TemporaryDirectory(prefix="vizcallbacks-images-") as tmp:
        previews, originals = Path(tmp, "previews"), Path(tmp, "originals")
        previews.mkdir()
        originals.mkdir()
        ready = []
        for item in items:
            try:
                _stage(spool, run_id, item, previews, originals)
                ready.append(item)
            except Exception as err:
                outcome[item["id"]] = err
        if not ready:
            return outcome
        try:
            client.log_artifacts(run_id, str(previews), IMAGES_DIR)
            client.log_artifacts(run_id, str(originals), IMAGES_DIR)
        except Exception as err:
            if not (is_rejection(err) or isinstance(err, NotImplementedError)):  # transient:
                # failed here, retried later; the images that did arrive are recognised then
                outcome.update({it["id"]: err for it in ready})
                return outcome
            _tell_fallback(str(client.tracking_uri), err)
            outcome.update(_one_by_one(client, run_id, spool, ready))
            return outcome
    outcome.update({it["id"]: None for it in ready})
    return outcome


def _tell_fallback(uri: str, err: BaseException) -> None:
    """Warn, once per process, that images go through ``log_image`` one by one."""
    with _state_lock:
        if _fallback_told:
            return
        _fallback_told.append(True)
    log.warning(
        "vizcallbacks: the MLflow store at %s refused a batch upload of images (%s); sending "
        "those images one by one with log_image instead (slower: it re-encodes each).",
        uri,
        short_error(err),
    )


def _one_by_one(client: Any, run_id: str, spool: Spool, items: Sequence[Item]) -> Outcome:
    """Images the batch upload left out, each through ``log_image``; those that did arrive are
    recognised by key, step and timestamp and not sent again."""
    try:
        present = images_on_server(client, run_id)
    except Exception as err:
        return {it["id"]: err for it in items}
    outcome: Outcome = {}
    for item in items:
        if (item["key"], item["step"], item["timestamp"]) in present:
            outcome[item["id"]] = None
            continue
        try:
            log_image(client, run_id, spool, item)
            outcome[item["id"]] = None
        except Exception as err:
            outcome[item["id"]] = err
    return outcome


def log_image(client: Any, run_id: str, spool: Spool, item: Item) -> None:
    """One spooled image through MLflow's own ``log_image`` (decoded, then re-encoded by it)."""
    from PIL import Image

    with Image.open(io.BytesIO(spooled_image(spool, item)[0])) as picture:
        picture.load()
        client.log_image(
            run_id,
            picture,
            key=item["key"],
            step=item["step"],
            timestamp=item["timestamp"],
            synchronous=True,  # we need to know it arrived; this is off the train thread
        )
