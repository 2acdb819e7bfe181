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
            "unique run name. With several SOURCEs, or --experiment NAME (every run of an MLflow "
            "experiment, a sweep), the page opens on all their runs compared, side by side."
        ),
        epilog=EXIT_STATUS,
    )
    report.add_argument("sources", nargs="*", metavar="SOURCE", help="log directory or MLflow run")
    report.add_argument("--experiment", metavar="NAME", help="every run of MLflow experiment NAME")
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

    if bool(args.experiment) == bool(args.sources):
        log.error("report takes one or more SOURCEs, or --experiment NAME alone")
        return USAGE
    try:
        sources = args.sources or _experiment_runs(args.experiment, args.tracking_uri)
        output = build_report(sources, args.output, args.tracking_uri)
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


def _experiment_runs(name: str, tracking_uri: str | None) -> list[str]:
    """The run ids of MLflow experiment ``name``, oldest first."""
    from vizcallbacks.compare import experiment_runs
    from vizcallbacks.sources.mlflow_runs import connect

    return experiment_runs(connect(tracking_uri), name)
