"""What RepresentationLogger logs, as records: the layer x layer CKA picture, each layer's CKA
with its first and previous representation, the convergence picture, and the Gram archive.

The archive (``files/cka/grams_step_<N>.npz``) is what runs are compared by: the layers' Gram
matrices over the probe set, centred, with a hash of the probe set; :func:`read_gram_archive`
reads it back.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vizcallbacks.records import File, Image, Record, Scalars
from vizcallbacks.render.colormap import DEFAULT_CMAP
from vizcallbacks.render.similarity import similarity_picture
from vizcallbacks.tags import tag

__all__ = [
    "ARCHIVE_FOLDER",
    "GramArchive",
    "archive_name",
    "convergence_records",
    "drift_records",
    "gram_archive_record",
    "layer_matrix_records",
    "read_gram_archive",
    "reduced_caption",
]

ARCHIVE_FOLDER = "cka"  # under the run's files: files/cka/grams_step_<N>.npz


def archive_name(step: int) -> str:
    """``cka/grams_step_000012.npz``: zero-padded, so names sort by step."""
    return f"{ARCHIVE_FOLDER}/grams_step_{step:06d}.npz"


def reduced_caption(reduced: Sequence[str], debiased: bool) -> list[str]:
    """The picture's caption: the estimator, and which layers were pooled to fit the budget."""
    lines = [f"linear CKA, {'debiased (unbiased HSIC)' if debiased else 'biased'} estimator"]
    if reduced:
        lines.append(
            "reduced to fit the memory budget (spatial average pooling to at most 8x8): "
            + ", ".join(reduced)
        )
    return lines


def layer_matrix_records(
    layers: Sequence[str],
    matrix: np.ndarray,
    step: int,
    caption: Sequence[str],
    cmap: str = DEFAULT_CMAP,
) -> list[Record]:
    """``cka/layers``: every logged layer against every other at ``step``."""
    title = f"CKA between layers · step {step}"
    picture = similarity_picture(matrix, layers, layers, title, caption, cmap)
    return [Image(tag("cka", "layers"), picture)]


def drift_records(
    layers: Sequence[str], to_initial: np.ndarray, to_previous: np.ndarray | None
) -> list[Record]:
    """``cka_to_initial/<layer>`` and (after the first step) ``cka_to_previous/<layer>``."""
    values = {
        tag("cka_to_initial", name): float(v) for name, v in zip(layers, to_initial, strict=True)
    }
    if to_previous is not None:
        previous = zip(layers, to_previous, strict=True)
        values |= {tag("cka_to_previous", name): float(v) for name, v in previous}
    return [Scalars(values)]


def convergence_records(
    layers: Sequence[str], steps: Sequence[int], matrix: np.ndarray, cmap: str = DEFAULT_CMAP
) -> list[Record]:
    """``cka/convergence``: a row per layer, a column per step, CKA with the final step's."""
    caption = ["each cell: the layer's CKA with its representation at the last step"]
    picture = similarity_picture(
        matrix, layers, [str(s) for s in steps], "CKA with the final representation", caption, cmap
    )
    return [Image(tag("cka", "convergence"), picture)]


@dataclass(frozen=True)
class GramArchive:
    """One step's Gram matrices of a run: ``grams`` ``(L, n, n)`` in ``layers`` order (centred;
    archives written before centring hold ``X Xᵀ``: CKA centres both alike)."""

    layers: tuple[str, ...]
    grams: np.ndarray
    probe_hash: str
    step: int
    reduced: tuple[str, ...]


def gram_archive_record(archive: GramArchive) -> File:
    """The archive as a compressed ``.npz`` file record. The Grams are kept in float32, the
    precision their product was computed in: compressing float64 took 5x the CPU."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        layers=np.array(archive.layers, dtype=str),
        grams=np.asarray(archive.grams, dtype=np.float32),
        probe_hash=np.array(archive.probe_hash),
        step=np.array(archive.step),
        reduced=np.array(archive.reduced, dtype=str),
    )
    return File(archive_name(archive.step), buffer.getvalue())


def read_gram_archive(path: str | Path) -> GramArchive:
    """Read a Gram archive back; ValueError naming the file when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return GramArchive(
                layers=tuple(str(x) for x in data["layers"]),
                grams=np.asarray(data["grams"], dtype=np.float64),
                probe_hash=str(data["probe_hash"]),
                step=int(data["step"]),
                reduced=tuple(str(x) for x in data["reduced"]),
            )
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path} is not a vizcallbacks Gram archive ({err})") from err
