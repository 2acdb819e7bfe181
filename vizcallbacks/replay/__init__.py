"""Replaying a spool: ``python -m vizcallbacks sync DIR`` sends what an MLflowWriter could not
deliver during training, each item once, after checking that each spooled file is whole.

``sync`` (the replay) and ``payloads`` (the checks) sit above the writers: they reuse the
writer's spool and delivery, and the writers never import them. Importing this loads no MLflow.
"""

from __future__ import annotations

from vizcallbacks.replay.sync import SyncResult, sync_spool

__all__ = ["SyncResult", "sync_spool"]
