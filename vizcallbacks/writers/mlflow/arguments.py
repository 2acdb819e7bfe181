"""MLflowWriter's arguments and the names it builds itself: checked in the constructor, and
every artifact path made safe and short (``tags.safe_name``, ``tags.shorten``) before it is
spooled, so no name the writer made can be refused by MLflow or the file system.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from vizcallbacks.tags import MAX_TAG_LENGTH, safe_name, shorten

__all__ = [
    "MAX_TAG_VALUE",
    "check_arguments",
    "check_key",
    "checked_metrics",
    "file_artifact",
    "seconds",
]

_KEY = re.compile(r"^[A-Za-z0-9_\-./ ]+$")  # what MLflow accepts in metric, param and image keys
MAX_TAG_VALUE = 8000


def check_key(key: str, what: str) -> str:
    """``key`` if MLflow accepts it as a metric or image key, else ``ValueError`` naming it."""
    if not isinstance(key, str) or not _KEY.match(key) or key.startswith("/") or ".." in key:
        raise ValueError(
            f"{what} {key!r} is not a valid MLflow key (letters, digits, _ - . / and space; no "
            "'..'). Build tags with vizcallbacks.tags.tag() and safe_name()."
        )
    return key


def checked_metrics(values: Mapping[str, float]) -> dict[str, float]:
    """``values`` as metrics MLflow accepts: every key checked, every value a float."""
    return {check_key(k, "Scalar tag"): float(v) for k, v in values.items()}


def check_arguments(names: Mapping[str, Any], spool_dir: object, on_unreachable: str) -> None:
    """Raise naming the first of MLflowWriter's arguments that cannot be right."""
    for name, value in names.items():
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise TypeError(f"{name} must be a non-empty string or None. Received: {value!r}")
    if not isinstance(spool_dir, (str, os.PathLike)):
        raise TypeError(f"spool_dir must be a path. Received: spool_dir={spool_dir!r}")
    if on_unreachable not in ("spool", "raise"):
        raise ValueError(
            "on_unreachable must be 'spool' (train anyway, send later) or 'raise' (stop "
            f"before training). Received: on_unreachable={on_unreachable!r}"
        )


def seconds(name: str, number: object) -> float:
    """``number`` as seconds, or ``ValueError`` naming ``name``."""
    if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
        raise ValueError(f"{name} must be a number of seconds ≥ 0. Received: {number!r}")
    return float(number)


def file_artifact(name: str) -> tuple[str, str]:
    """``("files/<folder>", "<file>")`` for a ``File`` record's name: each part safe, the folder
    and the file name (its extension kept) each at most ``MAX_TAG_LENGTH`` characters."""
    folder, _, base = name.rpartition("/")
    folder = shorten("/".join(safe_name(part) for part in folder.split("/") if part))
    stem, dot, extension = safe_name(base).rpartition(".")
    if not dot or not stem or len(extension) > 10:
        stem, extension = safe_name(base), ""
    suffix = f".{extension}" if extension else ""
    return (f"files/{folder}" if folder else "files"), shorten(
        stem, MAX_TAG_LENGTH - len(suffix)
    ) + suffix
