"""Tags for everything logged: the one place where names become TensorBoard tags and MLflow keys.

Layer names may hold any character; MLflow keys accept only letters, digits, ``_ - . / space``
and must not climb directories, so every name passes through :func:`safe_name` here and nowhere
else. :func:`unique_safe_names` keeps two different layers from colliding into one key.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["safe_name", "tag", "unique_safe_names"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-.]+")


def safe_name(name: str) -> str:
    """Return ``name`` made safe for a tag segment, an MLflow key and a file name.

    Non-ASCII letters lose their accents (``é`` → ``e``), every other character outside
    ``[A-Za-z0-9_.-]`` becomes ``_``, runs of dots collapse to one (no ``..``), and an empty result
    becomes ``_``. Slashes are replaced too: a nested layer's path is joined by the caller.
    """
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("_", ascii_name)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip(".")
    return cleaned or "_"


def unique_safe_names(paths: Iterable[tuple[str, ...]]) -> list[str]:
    """Map layer paths (``("vgg16", "block1_conv1")``) to distinct safe names joined by ``/``.

    Two paths that become the same safe name get ``_2``, ``_3``... suffixes in order, so that no
    two layers ever share a tag.
    """
    names: list[str] = []
    seen: set[str] = set()
    for path in paths:
        base = "/".join(safe_name(part) for part in path)
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        names.append(name)
    return names


def tag(kind: str, layer: str, probe: str | None = None) -> str:
    """``activations/<layer>``, ``activation_mean/<layer>``...; with a probe name appended."""
    name = f"{kind}/{layer}"
    return name if probe is None else f"{name}/{safe_name(probe)}"
