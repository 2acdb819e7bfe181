"""Two runs' representations compared: ``python -m vizcallbacks compare A B --cka``.

Each run is a TensorBoard log directory or an MLflow run (id or unique name) that a
RepresentationLogger wrote to; its Gram archive (``files/cka/grams_step_<N>.npz``) is read back
and run A's layers x run B's layers are drawn as one CKA matrix. Runs whose probe sets differ
(another hash) are refused: CKA compares two representations of the same examples.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vizcallbacks.compute.cka import cross_cka, unit_centered
from vizcallbacks.render.similarity import similarity_picture
from vizcallbacks.views.representations import ARCHIVE_FOLDER, GramArchive, read_gram_archive

__all__ = ["CkaComparison", "ProbeSetMismatchError", "compare_cka", "load_archive", "output_name"]

log = logging.getLogger("vizcallbacks")

_ARCHIVE = re.compile(r"grams_step_(\d+)\.npz$")


class ProbeSetMismatchError(ValueError):
    """The two runs computed their Gram matrices over different probe sets."""


def _pick(names: list[str], step: int | None, where: str) -> str:
    """The archive of ``step`` among ``names`` (the last step when None)."""
    by_step = {int(m.group(1)): name for name in names if (m := _ARCHIVE.search(name))}
    if not by_step:
        raise LookupError(
            f"{where} holds no Gram archive ({ARCHIVE_FOLDER}/grams_step_<N>.npz): was a "
            "RepresentationLogger logging to it, and did its fit end?"
        )
    chosen = max(by_step) if step is None else step
    if chosen not in by_step:
        raise LookupError(
            f"{where} has Gram matrices at steps {sorted(by_step)}, not {step}; pass one of "
            "those with --step, or log it with RepresentationLogger(gram_steps=[...])."
        )
    return by_step[chosen]


def load_archive(
    source: str, step: int | None = None, tracking_uri: str | None = None
) -> tuple[str, GramArchive]:
    """``(label, archive)`` of a TensorBoard log directory or an MLflow run id or name."""
    folder = Path(source) / "files" / ARCHIVE_FOLDER
    if Path(source).is_dir():
        names = sorted(p.name for p in folder.glob("grams_step_*.npz")) if folder.is_dir() else []
        return Path(source).name or source, read_gram_archive(folder / _pick(names, step, source))
    from vizcallbacks.sources.mlflow_runs import connect, open_run

    client = connect(tracking_uri)
    run = open_run(client, source)
    listed = client.list_artifacts(run.run_id, f"files/{ARCHIVE_FOLDER}")
    name = _pick([Path(item.path).name for item in listed], step, f"MLflow run {run.label}")
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run.run_id, f"files/{ARCHIVE_FOLDER}/{name}", tmp)
        return run.label, read_gram_archive(local)


@dataclass(frozen=True)
class CkaComparison:
    """Run A's layers x run B's layers: the CKA matrix and its picture."""

    matrix: np.ndarray
    picture: np.ndarray
    labels: tuple[str, str]
    archives: tuple[GramArchive, GramArchive]

    def summary(self) -> str:
        """The best match in run B of each of run A's layers, one line each."""
        a, b = self.archives
        lines = [f"CKA, {self.labels[0]} (step {a.step}) x {self.labels[1]} (step {b.step})"]
        for name, row in zip(a.layers, self.matrix, strict=True):
            if np.isfinite(row).any():
                j = int(np.nanargmax(row))
                lines.append(f"  {name}: closest {b.layers[j]} ({row[j]:.3f})")
        return "\n".join(lines)


def compare_cka(
    a: GramArchive, b: GramArchive, labels: tuple[str, str], debiased: bool = False
) -> CkaComparison:
    """CKA of every layer of run A with every layer of run B, drawn; refuses other probe sets."""
    if a.probe_hash != b.probe_hash or a.grams.shape[1] != b.grams.shape[1]:
        raise ProbeSetMismatchError(
            f"{labels[0]} and {labels[1]} computed their Gram matrices over different probe sets "
            f"(hash {a.probe_hash}, {a.grams.shape[1]} examples vs hash {b.probe_hash}, "
            f"{b.grams.shape[1]} examples): CKA compares representations of the same examples. "
            "Log both runs with the same images= for RepresentationLogger."
        )
    units_a = np.stack([unit_centered(k, debiased) for k in a.grams])
    units_b = np.stack([unit_centered(k, debiased) for k in b.grams])
    matrix = cross_cka(units_a, units_b)
    caption = [f"rows: {labels[0]} (step {a.step}); columns: {labels[1]} (step {b.step})"]
    caption.append(f"probe set {a.probe_hash}, {a.grams.shape[1]} examples")
    for label, archive in zip(labels, (a, b), strict=True):
        if archive.reduced:
            caption.append(f"{label}: pooled to 8x8 to fit memory: {', '.join(archive.reduced)}")
    title = f"CKA: {labels[0]} (rows) vs {labels[1]} (columns)"
    picture = similarity_picture(matrix, a.layers, b.layers, title, caption)
    return CkaComparison(matrix, picture, labels, (a, b))


def output_name(run_a: Any, run_b: Any) -> Path:
    """The picture's default file name, after both runs."""
    return Path(f"compare-cka-{_slug(run_a)}-{_slug(run_b)}.png")


def _slug(run: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(run)).name or "run")[:32]
