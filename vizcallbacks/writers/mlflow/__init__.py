"""MLflow writer, a file per job: ``target`` (where to log), ``server`` (talking to MLflow),
``spool`` (items on disk), ``sender`` (the background thread), ``delivery`` (one batch),
``sync`` (replaying a spool), ``readback`` (reading runs back), ``writer`` (the protocol).

Importing this package loads neither MLflow nor Keras; MLflow is imported on first use.
"""

from __future__ import annotations

from vizcallbacks.writers.mlflow.spool import describe_items, find_spools
from vizcallbacks.writers.mlflow.sync import SyncResult, sync_spool
from vizcallbacks.writers.mlflow.writer import MLflowWriter

__all__ = ["MLflowWriter", "SyncResult", "describe_items", "find_spools", "sync_spool"]
