"""The read side: runs read back from TensorBoard log directories and MLflow stores, for
``compare``, the dashboard plugin and the report. The writers never import it, nor it them.

``run`` (what a run holds, :class:`RunData`), ``tensorboard`` (TensorBoard's data provider),
``mlflow_runs`` (finding a run in a store, its images and metrics) and ``mlflow_reader`` (an
MLflow run as :class:`RunData`). Importing this loads neither TensorBoard nor MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vizcallbacks.sources.run import RunData

__all__ = ["RunData", "read_source"]


def read_source(source: str, tracking_uri: str | None = None) -> Any:
    """A reader (``runs()``, ``blob(ref)``) for a TensorBoard log directory, else an MLflow run
    (id or unique name) in ``tracking_uri``'s store."""
    if Path(source).is_dir():
        from vizcallbacks.sources.tensorboard import LogdirReader

        return LogdirReader(source)
    from vizcallbacks.sources.mlflow_reader import MLflowRunReader
    from vizcallbacks.sources.mlflow_runs import connect

    return MLflowRunReader(connect(tracking_uri), source)
