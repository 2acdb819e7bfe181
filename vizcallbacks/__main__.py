"""Command line: ``python -m vizcallbacks sync SPOOL_DIR``, ``compare RUN...`` and
``report SOURCE... -o report.html``.

Each subcommand lives in :mod:`vizcallbacks.commands`: an ``add_<name>`` function registers its
parser and handler; a handler takes the parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from vizcallbacks.commands import EXIT_STATUS, FAILED, USAGE, short_text
from vizcallbacks.commands.compare import add_compare
from vizcallbacks.commands.report import add_report
from vizcallbacks.commands.sync import add_sync

__all__ = ["EXIT_STATUS", "FAILED", "USAGE", "main", "short_text"]

log = logging.getLogger("vizcallbacks")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m vizcallbacks",
        description="Tools around the vizcallbacks logs.",
        epilog=EXIT_STATUS,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_sync(commands)
    add_compare(commands)
    add_report(commands)
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


if __name__ == "__main__":
    sys.exit(main())
