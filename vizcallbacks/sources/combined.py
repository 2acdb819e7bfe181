"""Several sources read as one, for a report of N runs (a sweep): every source's runs, their names
kept apart, each image reference marked with its source so that two MLflow runs' equal artifact
paths stay two pictures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vizcallbacks.sources.run import RunData

__all__ = ["SourcesReader", "distinct_names"]


def distinct_names(names: Sequence[str]) -> list[str]:
    """``names`` with each repeat numbered (``logs``, ``logs (2)``): the dashboard tells runs
    apart by name."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


class SourcesReader:
    """The runs of ``readers`` (each a :func:`~vizcallbacks.sources.read_source` reader) in
    order; an image reference is ``<reader index>:<its reader's reference>``."""

    def __init__(self, readers: Sequence[Any]) -> None:
        self.readers = list(readers)

    def runs(self) -> list[RunData]:
        """Every reader's runs, in the order given, named apart."""
        runs = []
        for i, reader in enumerate(self.readers):
            for run in reader.runs():
                images = {t: {s: f"{i}:{r}" for s, r in by.items()} for t, by in run.images.items()}
                runs.append(RunData(run.name, images, run.scalars, run.texts, run.params))
        for run, name in zip(runs, distinct_names([r.name for r in runs]), strict=True):
            run.name = name
        return runs

    def blob(self, ref: str) -> bytes:
        """The bytes of the image ``ref`` (a reference from :meth:`runs`)."""
        index, _, inner = ref.partition(":")
        return bytes(self.readers[int(index)].blob(inner))

    def close(self) -> None:
        """Close every reader that holds something (an MLflow run's downloaded files)."""
        for reader in self.readers:
            getattr(reader, "close", lambda: None)()
