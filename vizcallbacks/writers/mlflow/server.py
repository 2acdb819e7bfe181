"""Talking to MLflow itself: importing it, probing the server, classifying and shortening errors,
and reading the image files ``log_image`` stored (their names carry key, step and timestamp).

MLflow is imported here only when a function needs it, so importing the package stays cheap.
"""

from __future__ import annotations

import errno
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

__all__ = [
    "IMAGES_DIR",
    "INSTALL_HINT",
    "LoggedImage",
    "image_artifact_name",
    "images_on_server",
    "import_mlflow",
    "is_rejection",
    "is_remote",
    "local_artifact_dir",
    "logged_images",
    "parse_image_name",
    "probe",
    "require_server",
    "short_error",
    "thumbnail_name",
]

INSTALL_HINT = "pip install 'vizcallbacks[mlflow]'"
PROBE_TIMEOUT = 3.0
IMAGES_DIR = "images"  # the run's artifact folder the run page reads image cards from
# MLflow 3 stores log_image(key=, step=) as images/<key, / as ~ or #>+step+<n>+timestamp+<ms>+...
# (older MLflow used % and #): image_artifact_name() writes these names, parse_image_name() reads
_IMAGE_FILE = re.compile(
    r"^(?P<key>.+?)[+%]step[+%](?P<step>-?\d+)[+%]timestamp[+%](?P<ts>\d+)[+%][^+%]+\.png$"
)


def import_mlflow() -> Any:
    """The ``mlflow`` module, or ``ImportError`` naming the extra that installs it."""
    try:
        import mlflow
    except ImportError as err:
        raise ImportError(
            f"MLflowWriter needs MLflow, an optional extra of vizcallbacks: {INSTALL_HINT}"
        ) from err
    return mlflow


def is_remote(uri: str) -> bool:
    """True for a tracking server (``http(s)://``), False for a local store."""
    return urlparse(uri).scheme in ("http", "https")


def probe(uri: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when the tracking server answers (or is not an HTTP server), else why not.

    One request to ``/health`` without MLflow's retries, which with a dead server take minutes.
    """
    if not is_remote(uri):
        return None
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    try:
        response = http_request(
            get_default_host_creds(uri),
            "/health",
            "GET",
            max_retries=0,
            backoff_factor=0,
            backoff_jitter=0,
            timeout=timeout,
            raise_on_status=False,
        )
    except Exception as err:
        return short_error(err)
    if response.status_code >= 500:
        return f"HTTP {response.status_code} from {uri}/health"
    return None


def require_server(uri: str, fix: str) -> None:
    """Raise ``ConnectionError`` naming ``uri`` and ``fix`` if the server does not answer."""
    reason = probe(uri)
    if reason is not None:
        raise ConnectionError(
            f"The MLflow tracking server at {uri} does not answer ({reason}). Start it, or {fix}"
        )


def short_error(err: BaseException) -> str:
    """A few words on ``err`` for a log line (the connection failure, not its traceback)."""
    text = str(err)
    for marker in ("Connection refused", "timed out", "Name or service not known"):
        if marker in text:
            return marker
    return f"{type(err).__name__}: {text[:200]}"


# OSErrors that no retry can cure: a name the file system cannot hold, an argument it refuses.
_PERMANENT_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EINVAL})


def is_rejection(err: BaseException) -> bool:
    """True when the item itself can never go (HTTP 4xx, a file name too long, a file that is
    not an image): sending it again cannot help, so it is named once and never retried."""
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException):
        status = err.get_http_status_code()
        return 400 <= status < 500 and status not in (408, 429)
    if isinstance(err, OSError) and err.errno in _PERMANENT_ERRNOS:
        return True
    if type(err).__name__ == "UnidentifiedImageError":  # PIL: the spooled file is no image
        return True
    return isinstance(err, (ValueError, TypeError, FileNotFoundError, UnicodeError))


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
    previews), whether ``log_image`` or :mod:`images` uploaded it."""
    for info in client.list_artifacts(run_id, IMAGES_DIR):
        image = parse_image_name(info.path)
        if image is not None:
            yield image


def images_on_server(client: Any, run_id: str) -> set[tuple[str, int, int]]:
    """(key, step, timestamp) of every image stored under ``log_image``'s names in the run."""
    return {(image.key, image.step, image.timestamp) for image in logged_images(client, run_id)}


_artifact_dirs: dict[tuple[str, str], Path | None] = {}


def local_artifact_dir(client: Any, run_id: str) -> Path | None:
    """The run's artifact folder when MLflow keeps its artifacts in a local folder (a path or
    ``file:`` URI, which MLflow's ``LocalArtifactRepository`` serves), else None. Files written
    there are what ``log_artifacts`` would copy there, without staging a copy first."""
    run = (str(client.tracking_uri), run_id)
    if run not in _artifact_dirs:
        from mlflow.utils.file_utils import local_file_uri_to_path
        from mlflow.utils.uri import is_local_uri

        uri = client.get_run(run_id).info.artifact_uri
        local = is_local_uri(uri, is_tracking_or_registry_uri=False)
        _artifact_dirs[run] = Path(local_file_uri_to_path(uri)) if local else None
    return _artifact_dirs[run]
