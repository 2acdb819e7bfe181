"""Command line: ``python -m vizcallbacks sync SPOOL_DIR`` (more subcommands to come).

Each subcommand is a ``_add_<name>`` function that registers its parser and handler; a handler
takes the parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("vizcallbacks")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m vizcallbacks",
        description="Tools around the vizcallbacks logs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_sync(commands)
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    previous_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        return int(args.handler(args))
    finally:
        log.removeHandler(handler)
        log.setLevel(previous_level)


# sync ------------------------------------------------------------------------------------------
def _add_sync(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser(
        "sync",
        help="send what an MLflowWriter could not deliver during training",
        description=(
            "Send the items an MLflowWriter kept on local disk because the tracking server did "
            "not answer. Each item is delivered once: running the command again sends nothing "
            "twice. SPOOL_DIR is the directory named in the training warning, or the spool root "
            "(vizcallbacks-spool) to send every spool in it."
        ),
    )
    sync.add_argument("spool_dir", metavar="SPOOL_DIR", type=Path)
    sync.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="send to this tracking server instead of the one recorded in the spool",
    )
    sync.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for a training process still delivering the spool (default 60)",
    )
    sync.set_defaults(handler=_sync)


def _sync(args: argparse.Namespace) -> int:
    from vizcallbacks.writers.spool import describe_items, find_spools

    spools = find_spools(args.spool_dir)
    if not spools:
        log.error(
            "%s holds no vizcallbacks spool (a directory with run.json). Pass the directory "
            "named in the training warning.",
            args.spool_dir,
        )
        return 2
    from vizcallbacks.writers.mlflow import sync_spool

    status = 0
    for directory in spools:
        try:
            result = sync_spool(directory, tracking_uri=args.tracking_uri, wait=args.wait)
        except (ConnectionError, TimeoutError, ValueError, FileNotFoundError, ImportError) as err:
            log.error("%s: %s", directory, err)
            status = 1
            continue
        if result.left:
            status = 1
            reasons = "; ".join(f"{why} ({n}x)" for why, n in result.errors.items())
            log.error(
                "%s: sent %d items to run %s at %s; %d could not be sent (%s): %s. Run the "
                "command again once this is fixed.",
                directory,
                result.sent,
                result.run_id,
                result.tracking_uri,
                len(result.left),
                describe_items(result.left),
                reasons or "unknown reason",
            )
        else:
            log.info(
                "%s: sent %d items to run %s at %s (%d had been sent before); nothing is left, "
                "the directory can be deleted.",
                directory,
                result.sent,
                result.run_id,
                result.tracking_uri,
                result.already_sent,
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
