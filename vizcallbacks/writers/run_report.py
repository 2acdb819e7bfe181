"""The seam through which ``MLflowWriter(report=True)`` has its run's HTML report logged without
importing the read side: the package root (``vizcallbacks/__init__.py``, which Python runs before
any writer module) installs the dashboard's report builder here, and the writer calls it."""

from __future__ import annotations

import logging
from collections.abc import Callable

__all__ = ["RunReport", "install_run_report", "log_run_report"]

log = logging.getLogger("vizcallbacks")

RunReport = Callable[[str, str], None]  # (tracking URI, run id): log that run's report
_installed: list[RunReport] = []  # the builder, once installed


def install_run_report(builder: RunReport) -> None:
    """Make ``builder`` what :func:`log_run_report` calls (it replaces any installed before)."""
    if not callable(builder):
        raise TypeError(
            f"install_run_report needs a function (tracking_uri, run_id) -> None. Received: "
            f"{builder!r}"
        )
    _installed[:] = [builder]


def log_run_report(tracking_uri: str, run_id: str) -> None:
    """Have the installed builder log the report of run ``run_id``; a warning when none is."""
    if not _installed:
        log.warning("vizcallbacks: no report builder is installed; run %s has no report", run_id)
        return
    _installed[0](tracking_uri, run_id)
