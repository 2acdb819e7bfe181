"""The dashboard as one self-contained HTML file: the plugin's frontend with every run and every
image inlined (``data:`` URIs), so it opens from disk with no server and no network request.

``python -m vizcallbacks report SOURCE... -o report.html`` (one source, or N compared: a sweep) and
the MLflow writer's train-end artifact all come through :func:`build_report`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from vizcallbacks.dashboard.network import network_index
from vizcallbacks.mlflow_store.tracking_uri import client_for
from vizcallbacks.render.png import recompressed_png
from vizcallbacks.sources import RunData, read_sources

__all__ = [
    "REPORT_ARTIFACT",
    "build_report",
    "log_report",
    "report_html",
    "static_text",
    "write_report",
]

log = logging.getLogger("vizcallbacks")

REPORT_ARTIFACT = "vizcallbacks_report.html"  # the MLflow run's artifact written at train end


def static_text(name: str) -> str:
    """A frontend file shipped with the package (``dashboard.js``, ``dashboard.css``)."""
    return resources.files("vizcallbacks.dashboard").joinpath("static", name).read_text("utf-8")


def _mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"GIF8"):
        return "image/gif"
    return "image/jpeg" if data.startswith(b"\xff\xd8") else "application/octet-stream"


def _image_series(index: dict[str, Any]) -> list[dict[str, Any]]:
    """Every image series of one run's index: the probes, the whole network's, the layers'."""
    series = index["inputs"] + index["network"]
    return series + [s for layer in index["layers"] for s in layer["images"]]


def _indexes(runs: Sequence[RunData]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every run's index with each image reference replaced by a short id; id → reference."""
    ids: dict[str, str] = {}
    indexes = []
    for run in runs:
        index = network_index(run)
        for entry in _image_series(index):
            entry["values"] = [ids.setdefault(ref, f"i{len(ids)}") for ref in entry["values"]]
        indexes.append(index)
    return indexes, {short: ref for ref, short in ids.items()}


def write_report(
    runs: Sequence[RunData],
    blob: Callable[[str], bytes],
    title: str,
    out: TextIO,
    shown: Sequence[str] = (),
) -> None:
    """Write the report page of ``runs`` to ``out``, one image at a time (a large run's images
    never sit in memory twice); ``blob`` turns an image reference into its bytes. The page opens
    on the runs named in ``shown``, the first with the others compared to it (default: the
    first run alone).

    Each picture is inlined once: a step whose image has the same bytes as one already written
    (a layer that did not change, the probe) points at that one. PNGs are deflated again at
    zlib's best level: the same pixels, fewer bytes.
    """
    indexes, refs = _indexes(runs)
    out.write(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        f"<style>{static_text('dashboard.css')}</style></head>\n"
        '<body><div id="vc-root"></div>\n<script type="application/json" id="vc-data">'
        '{"images":{'
    )
    written: dict[bytes, str] = {}  # digest of the logged bytes → the id they were inlined as
    same: dict[str, str] = {}  # id → the id holding the same bytes
    for short, ref in refs.items():
        data = blob(ref)
        digest = hashlib.sha256(data).digest()
        if digest in written:
            same[short] = written[digest]
            continue
        data = recompressed_png(data)  # base64 holds no quote and no "</": written as is
        encoded = base64.b64encode(data).decode("ascii")
        out.write(f'{"," if written else ""}"{short}":"data:{_mime(data)};base64,{encoded}"')
        written[digest] = short
    for index in indexes:
        for entry in _image_series(index):
            entry["values"] = [same.get(short, short) for short in entry["values"]]
    opened = json.dumps(list(shown) or [runs[0].name])
    payload = json.dumps(indexes, separators=(",", ":"))
    out.write(f'}},"shown":{opened},"runs":{payload}'.replace("</", "<\\/"))
    out.write(
        f'}}</script>\n<script type="module">{static_text("dashboard.js")}\n'
        'render(JSON.parse(document.getElementById("vc-data").textContent));\n'
        "</script></body></html>\n"
    )


def report_html(
    runs: Sequence[RunData],
    blob: Callable[[str], bytes],
    title: str,
    shown: Sequence[str] = (),
) -> str:
    """The report page of ``runs`` as a string (see :func:`write_report`)."""
    page = io.StringIO()
    write_report(runs, blob, title, page, shown)
    return page.getvalue()


def build_report(
    source: str | Sequence[str], output: str | Path, tracking_uri: str | None = None
) -> Path:
    """Write the report of ``source`` (see :func:`~vizcallbacks.sources.read_source`), or of
    several sources' runs compared (the page opens on all of them), to ``output``;
    ``ValueError`` when they hold nothing vizcallbacks logged."""
    sources = [source] if isinstance(source, str) else list(source)
    reader = read_sources(sources, tracking_uri)
    target = Path(output)
    partial = target.with_name(target.name + ".partial")
    try:
        runs = reader.runs()
        if not runs:
            raise ValueError(f"{' nor '.join(sources)}: no run logged by vizcallbacks")
        several = len(sources) > 1
        title = f"{len(runs)} runs compared" if several else runs[0].name or sources[0]
        shown = [run.name for run in runs] if several else []
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "w", encoding="utf-8") as out:
            write_report(runs, reader.blob, f"vizcallbacks · {title}", out, shown)
        os.replace(partial, target)  # never a half-written report under the name asked for
    finally:
        partial.unlink(missing_ok=True)
        getattr(reader, "close", lambda: None)()
    return target


def log_report(tracking_uri: str, run_id: str) -> None:
    """Build the report of MLflow run ``run_id`` from what it holds and log it as the run's
    artifact ``vizcallbacks_report.html``; a failure is a warning, never an error."""
    try:
        client = client_for(tracking_uri)
        with tempfile.TemporaryDirectory(prefix="vizcallbacks-report-") as tmp:
            path = build_report(run_id, Path(tmp) / REPORT_ARTIFACT, tracking_uri)
            client.log_artifact(run_id, str(path))
    except Exception as err:  # the report is a bonus: training and the run are already safe
        log.warning("vizcallbacks: the HTML report of run %s was not written: %s", run_id, err)
