"""A tracking URI made absolute and checked before MLflow touches it, so a typo is one line, not
a traceback; and the client for it.

MLflow would raise deep inside (an unknown scheme, SQLAlchemy on a file that is not a database)
or quietly create a store where none was meant to be; :func:`check_tracking_uri` says which URI
is wrong and what to pass instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vizcallbacks.mlflow_store.server import import_mlflow, short_error

__all__ = [
    "SQLITE_HEADER",
    "TrackingUriError",
    "absolute_tracking_uri",
    "check_tracking_uri",
    "client_for",
]

SQLITE_HEADER = b"SQLite format 3\x00"
FIX = (
    "Pass --tracking-uri with a tracking server (http://host:port) or a local store "
    "(sqlite:///path/to/mlflow.db)."
)


class TrackingUriError(ValueError):
    """A tracking URI MLflow cannot use; the message names it and what to pass instead."""


def absolute_tracking_uri(uri: str) -> str:
    """``uri`` with a local store's relative path made absolute, so ``sync`` works from anywhere."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite" and uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :]
        if path and path != ":memory:" and not os.path.isabs(path):
            return "sqlite:///" + os.path.abspath(path)
        return uri
    if parsed.scheme == "file":
        return Path(parsed.path).resolve().as_uri()
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # a plain path
        return str(Path(uri).resolve())
    return uri


def _sqlite_path(uri: str) -> str | None:
    if urlparse(uri).scheme == "sqlite" and uri.startswith("sqlite:///"):
        return uri[len("sqlite:///") :]
    return None


def check_tracking_uri(uri: str, create: bool = False) -> None:
    """Raise :class:`TrackingUriError` if ``uri`` cannot be a store or server to use.

    With ``create``, a SQLite file that does not exist yet is fine when its folder does (``sync``
    may start a new store); an existing file must be a SQLite database either way.
    """
    scheme = urlparse(uri).scheme
    path = _sqlite_path(uri)
    if path is not None and path != ":memory:":
        if os.path.isfile(path):
            with open(path, "rb") as f:
                head = f.read(len(SQLITE_HEADER))
            if head and head != SQLITE_HEADER:
                raise TrackingUriError(f"{uri}: {path} is not a SQLite database. {FIX}")
        elif os.path.exists(path):
            raise TrackingUriError(f"{uri}: {path} is not a file. {FIX}")
        elif not create:
            raise TrackingUriError(f"There is no MLflow store at {path} ({uri}). {FIX}")
        elif not os.path.isdir(os.path.dirname(path) or "."):
            raise TrackingUriError(f"{uri}: the folder of {path} does not exist. {FIX}")
        return
    if scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt"):
        local = Path(urlparse(uri).path if scheme == "file" else uri)
        if not local.is_dir():
            raise TrackingUriError(f"There is no MLflow store at {local} ({uri}). {FIX}")
        return
    if scheme in ("http", "https"):
        if not urlparse(uri).netloc:
            raise TrackingUriError(f"{uri}: the address has no host. {FIX}")
        return
    client_for(uri)  # another scheme (a database, a plugin): does MLflow know it?


def client_for(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri``, or :class:`TrackingUriError` if MLflow refuses it."""
    mlflow = import_mlflow()
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.MlflowClient(uri)
    except (MlflowException, ImportError, OSError, ValueError) as err:
        reason = short_error(err).splitlines()[0][:120]
        if "unsupported uri" in reason.lower():
            reason = f"no tracking store for the scheme {urlparse(uri).scheme!r}"
        raise TrackingUriError(
            f"MLflow cannot use the tracking URI {uri} ({reason}). {FIX}"
        ) from err
