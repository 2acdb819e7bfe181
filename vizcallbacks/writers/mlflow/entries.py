"""Records as spool entries: what each kind of record becomes in an MLflow run (an image with its
run-page preview, a text or file artifact, metrics, option tags), each key checked first."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vizcallbacks.records import File, Image, Text
from vizcallbacks.tags import option_key, shorten
from vizcallbacks.writers.mlflow.arguments import MAX_TAG_VALUE, check_key, file_artifact
from vizcallbacks.writers.mlflow.images import thumbnail
from vizcallbacks.writers.mlflow.spool import Entry
from vizcallbacks.writers.mlflow.target import now_ms

__all__ = ["file_entry", "image_entry", "metrics_entry", "option_tags", "text_entry"]


def image_entry(image: Image, step: int) -> Entry:
    """The image's PNG as encoded once by the record, then its card's preview: the run page."""
    check_key(image.tag, "Image tag")
    preview = thumbnail(image.pixels)
    fields = {"key": image.tag, "step": step, "timestamp": now_ms(), "preview": len(preview)}
    return "image", fields, ("image.png", image.png + preview)


def text_entry(text: Text, step: int) -> Entry:
    """Text as the file ``text/<tag>/step_000003.md`` in the run's artifacts."""
    check_key(text.tag, "Text tag")
    fields = {"artifact_path": f"text/{shorten(text.tag)}", "step": step}
    return "artifact", fields, (f"step_{step:06d}.md", str(text.text).encode("utf-8"))


def file_entry(file: File) -> Entry:
    """``data`` as the run artifact ``files/<name>`` (an animation, say)."""
    check_key(file.name, "File name")
    path, base = file_artifact(file.name)
    return "artifact", {"artifact_path": path}, (base, bytes(file.data))


def metrics_entry(values: Mapping[str, float], step: int) -> Entry:
    """A step's metrics as one item: each key becomes a chart comparable across runs."""
    return "metrics", {"step": step, "timestamp": now_ms(), "values": dict(values)}, None


def option_tags(params: Mapping[str, Any]) -> dict[str, str]:
    """Run options as tags ``vizcallbacks.<name>`` (JSON text, cut to MLflow's limit): not
    parameters, which the run page's image cards list above the image, hiding most of it."""
    tags: dict[str, str] = {}
    for name, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > MAX_TAG_VALUE:
            text = text[: MAX_TAG_VALUE - 3] + "..."
        tags[shorten(option_key(str(name)))] = text
    return tags
