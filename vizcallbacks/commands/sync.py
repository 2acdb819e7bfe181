"""``python -m vizcallbacks sync SPOOL_DIR``: send what an MLflowWriter could not deliver."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from vizcallbacks.commands import EXIT_STATUS, FAILED, USAGE, short_text

__all__ = ["add_sync"]

log = logging.getLogger("vizcallbacks")


def add_sync(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser(
        "sync",
        help="send what an MLflowWriter could not deliver during training",
        description=(
            "Send the items an MLflowWriter kept on local disk because the tracking server did "
            "not answer. Each item is delivered once: running the command again sends nothing "
            "twice. SPOOL_DIR is the directory named in the training warning, or the spool root "
            "(vizcallbacks-spool) to send every spool in it. The spool is checked first: a "
            "damaged item is named and skipped, a directory vizcallbacks did not write is "
            "refused untouched, and a run its training process never ended is ended as KILLED."
        ),
        epilog=EXIT_STATUS,
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
    from vizcallbacks.writers.mlflow.spool import find_spools

    spools = find_spools(args.spool_dir)
    if not spools:
        log.error(
            "%s holds no vizcallbacks spool (a directory with run.json). Pass the directory "
            "named in the training warning.",
            args.spool_dir,
        )
        return USAGE
    try:
        from vizcallbacks.mlflow_store.tracking_uri import (
            TrackingUriError,
            absolute_tracking_uri,
            check_tracking_uri,
        )
        from vizcallbacks.replay.sync import sync_spool
        from vizcallbacks.writers.mlflow.spool_format import NotASpoolError

        if args.tracking_uri:
            check_tracking_uri(absolute_tracking_uri(args.tracking_uri), create=True)
    except ImportError as err:
        log.error("%s", err)
        return USAGE
    except TrackingUriError as err:
        log.error("%s", err)
        return USAGE
    status = 0
    for directory in spools:  # one broken spool does not keep the others back
        try:
            result = sync_spool(directory, tracking_uri=args.tracking_uri, wait=args.wait)
        except (NotASpoolError, TrackingUriError) as err:
            log.error("%s", err)
            status = max(status, USAGE)
            continue
        except (ConnectionError, TimeoutError, ValueError, OSError, ImportError) as err:
            log.error("%s: %s", directory, err)
            status = max(status, FAILED)
            continue
        except Exception as err:  # a bug or a server answer nobody expected: still go on
            log.error("%s: could not be synced (%s)", directory, short_text(err))
            status = max(status, FAILED)
            continue
        status = max(status, _report(result))
    return status


def _report(result: Any) -> int:
    """Log what one spool's sync did; FAILED if anything was left, else 0."""
    from vizcallbacks.writers.mlflow.spool import describe_items

    directory = result.directory
    if result.incomplete is not None:
        log.warning(
            "%s: %s; the process that wrote it stopped mid-write (or is still writing it).",
            directory,
            result.incomplete,
        )
    for damaged in result.damaged:
        log.error("%s: skipped damaged %s", directory, damaged)
    ended = f"; its run was never ended, so it is now {result.ended}" if result.ended else ""
    if result.left:
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
        return FAILED
    outcome = (
        f"{len(result.damaged)} damaged items above could not be sent."
        if result.damaged
        else "nothing is left, the directory can be deleted."
    )
    (log.error if result.damaged else log.info)(
        "%s: sent %d items to run %s at %s (%d had been sent before)%s; %s",
        directory,
        result.sent,
        result.run_id,
        result.tracking_uri,
        result.already_sent,
        ended,
        outcome,
    )
    return FAILED if result.damaged else 0
