"""Evolution strips at train end: an image and a GIF per layer that was logged at least twice."""

from __future__ import annotations

from collections.abc import Mapping

from vizcallbacks.records import File, Image, Record
from vizcallbacks.render.evolution import EvolutionRecorder
from vizcallbacks.tags import tag

__all__ = ["evolution_records"]


def evolution_records(kind: str, recorders: Mapping[str, EvolutionRecorder]) -> list[Record]:
    """Per layer, the strip (a row per logged step) as ``<kind>/<layer>`` and its animation."""
    records: list[Record] = []
    for layer, recorder in recorders.items():
        if len(recorder) >= 2:
            records.append(Image(tag(kind, layer), recorder.strip()))
            records.append(File(f"{tag(kind, layer)}.gif", recorder.gif()))
    return records
