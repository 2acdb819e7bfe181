"""What one logged run holds, as every source reads it back (pure, no backend).

:class:`RunData` is what a source read back (TensorBoard's data provider, an MLflow run): image
references, scalars and texts by tag and step, and the loggers' options; the dashboard draws it,
the report inlines it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vizcallbacks.tags import IMAGE_KINDS, SCALAR_KINDS, TEXT_KINDS

__all__ = [
    "DEAD_TEXT",
    "LAYERS_PARAM",
    "PROBES_PARAM",
    "RunData",
    "is_logged_by_us",
    "params_from_markdown",
]

DEAD_TEXT = "dead_channel_indices"  # text kind naming the dead channels
LAYERS_PARAM = "layers_logged"  # ActivationLogger's options: its layers in forward order
PROBES_PARAM = "probes_logged"  # ... and its probes in the order given


@dataclass
class RunData:
    """A run read back: ``images`` tag → step → reference (a blob key, an artifact path) that
    the source turns into bytes; ``scalars`` tag → ``[(step, value)]``; ``texts`` tag → step →
    text; ``params`` the loggers' options. Tags keep the order the source listed them in."""

    name: str
    images: dict[str, dict[int, str]] = field(default_factory=dict)
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    texts: dict[str, dict[int, str]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def is_logged_by_us(key: str) -> bool:
    """True for a tag of the vizcallbacks vocabulary (not Keras' own ``epoch_loss``)."""
    kind = key.partition("/")[0]
    return kind in IMAGE_KINDS or kind in SCALAR_KINDS or kind in TEXT_KINDS


def params_from_markdown(text: str) -> dict[str, Any]:
    """The options table ``| parameter | value |`` (JSON values) that the TensorBoard writer logs
    as ``vizcallbacks/params``, back as a dict; rows that do not parse are left out."""
    params: dict[str, Any] = {}
    for line in text.splitlines()[2:]:
        name, sep, value = line.strip().strip("|").partition(" | ")
        if not sep:
            continue
        try:
            params[name.strip()] = json.loads(value.strip())
        except ValueError:
            continue
    return params
