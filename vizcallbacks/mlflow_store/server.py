"""Talking to MLflow itself: importing it, probing the server, classifying and shortening errors,
and where a local store keeps a run's artifacts.

MLflow is imported here only when a function needs it, so importing the package stays cheap.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = [
    "INSTALL_HINT",
    "import_mlflow",
    "is_rejection",
    "is_remote",
    "local_artifact_dir",
    "probe",
    "require_server",
    "short_error",
]

INSTALL_HINT = "pip install 'vizcallbacks[mlflow]'"
PROBE_TIMEOUT = 3.0


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
