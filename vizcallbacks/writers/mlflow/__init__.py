"""MLflow writer, a file per job: ``writer`` (the protocol), ``arguments`` (checked once),
``target`` (where to log), ``spool`` and ``spool_format`` (items on disk), ``sender`` (the
background thread), ``delivery`` and ``images`` (one batch), ``histograms``, ``lifecycle``.

It only writes and delivers: replaying a spool is :mod:`vizcallbacks.replay`, reading runs back
:mod:`vizcallbacks.sources`. Importing this package loads neither MLflow nor Keras; MLflow is
imported on first use.
"""

from __future__ import annotations

from vizcallbacks.writers.mlflow.spool import describe_items, find_spools
from vizcallbacks.writers.mlflow.writer import MLflowWriter

__all__ = ["MLflowWriter", "describe_items", "find_spools"]
