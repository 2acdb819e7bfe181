"""``python -m vizcallbacks report SOURCE... -o report.html``: the dashboard as one HTML file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vizcallbacks.commands import EXIT_STATUS, FAILED, USAGE, short_text

__all__ = ["add_report"]

log = logging.getLogger("vizcallbacks")


def add_report(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report",
        help="the network and layer views of a run as one self-contained HTML file",
        description=(
            "Write the dashboard of a run (the network view: one probe down every logged layer "
            "at a step; the layer view: one layer across every step) as one HTML file with "
            "every image inlined: it opens from disk, with no server and no network request. "
            "SOURCE is a TensorBoard log directory (every run in it) or an MLflow run id or "
            "unique run name."
        ),
        epilog=EXIT_STATUS,
    )
    report.add_argument("source", metavar="LOGDIR_OR_MLFLOW_RUN")
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("report.html"),
        metavar="PATH",
        help="HTML file to write (default: report.html)",
    )
    report.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="for an MLflow run: its server or store (default: $MLFLOW_TRACKING_URI, else "
        "sqlite:///mlflow.db)",
    )
    report.set_defaults(handler=_report_command)


def _report_command(args: argparse.Namespace) -> int:
    from vizcallbacks.dashboard.report import build_report

    try:
        output = build_report(args.source, args.output, args.tracking_uri)
    except ImportError as err:  # an MLflow run without MLflow installed
        log.error("MLflow is not available (%s): pip install 'vizcallbacks[mlflow]'", err)
        return USAGE
    except (LookupError, ValueError) as err:  # no such run or store, or nothing logged
        log.error("%s", err)
        return USAGE
    except (ConnectionError, OSError) as err:
        log.error("%s", short_text(err))
        return FAILED
    log.info("Wrote %s (%d kB)", output, output.stat().st_size // 1024)
    return 0
