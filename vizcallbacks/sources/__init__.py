"""The read side: runs read back from TensorBoard log directories and MLflow stores, for
``compare``, the dashboard plugin and the report. The writers never import it, nor it them.

``run`` (what a run holds, :class:`RunData`), ``tensorboard`` (TensorBoard's data provider),
``mlflow_runs`` (finding a run in a store, its images and metrics), ``mlflow_reader`` (an
MLflow run as :class:`RunData`) and ``combined`` (several sources read as one).
Importing this loads neither TensorBoard nor MLflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vizcallbacks.sources.run import RunData

__all__ = ["RunData", "read_source", "read_sources"]


def read_source(source: str, tracking_uri: str | None = None) -> Any:
    """A reader (``runs()``, ``blob(ref)``) for a TensorBoard log directory, else an MLflow run
    (id or unique name) in ``tracking_uri``'s store."""
    if Path(source).is_dir():
        from vizcallbacks.sources.tensorboard import LogdirReader

        return LogdirReader(source)
    from vizcallbacks.sources.mlflow_reader import MLflowRunReader
    from vizcallbacks.sources.mlflow_runs import connect

    return MLflowRunReader(connect(tracking_uri), source)


def read_sources(sources: Sequence[str], tracking_uri: str | None = None) -> Any:
    """One reader of every run of ``sources`` (each as :func:`read_source` reads it): the
    source's own reader when there is one, else a :class:`~.combined.SourcesReader`."""
    from vizcallbacks.sources.combined import SourcesReader

    if not sources:
        raise ValueError("sources is empty: pass a log directory or an MLflow run, or several")
    if len(sources) == 1:
        return read_source(sources[0], tracking_uri)
    readers: list[Any] = []
    try:
        for source in sources:
            readers.append(read_source(source, tracking_uri))
    except BaseException:
        SourcesReader(readers).close()  # the runs already downloaded
        raise
    return SourcesReader(readers)
