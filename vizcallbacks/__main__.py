"""Command line: ``python -m vizcallbacks sync SPOOL_DIR``, ``compare RUN_A RUN_B`` and
``report LOGDIR_OR_MLFLOW_RUN -o report.html``.

Each subcommand is a ``_add_<name>`` function that registers its parser and handler; a handler
takes the parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["EXIT_STATUS", "FAILED", "USAGE", "main", "short_text"]

log = logging.getLogger("vizcallbacks")

FAILED = 1  # something could not be done now: what is left is kept, run the command again
USAGE = 2  # what was passed is wrong: a tracking URI, a directory, a run, an output path
EXIT_STATUS = (
    "Exit status: 0 when everything was done; 1 when something could not be sent or written "
    "now (a server that does not answer, a full disk, a damaged item: each is named, and what "
    "is left is kept, so running the command again finishes the job); 2 when what was passed "
    "is wrong (a tracking URI MLflow cannot use, a directory that is not a vizcallbacks spool, "
    "a run that does not exist, an output suffix other than .png, .jpg or .jpeg)."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m vizcallbacks",
        description="Tools around the vizcallbacks logs.",
        epilog=EXIT_STATUS,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_sync(commands)
    _add_compare(commands)
    _add_report(commands)
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


def short_text(err: BaseException) -> str:
    """``Type: message``, on one line, for an error message."""
    return f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"


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


# compare ---------------------------------------------------------------------------------------
def _step(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer step, received {value!r}") from None


def _scale(value: str) -> int:
    n = _step(value)
    if not 1 <= n <= 32:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to 32, received {value!r}")
    return n


def _add_compare(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare",
        help="one picture of two MLflow runs' grids at the same step and their statistic curves",
        description=(
            "Draw run A's image KEY at step N beside run B's (the same grid of feature maps, say "
            "LeNet-5 with valid versus same padding), with both runs' statistic curves "
            "(activation_mean/<layer> by default) on one plot below, and write it as a PNG. "
            "With more runs, --experiment or --layers: a row per run, a column per layer."
        ),
    )
    compare.add_argument("runs", nargs="*", metavar="RUN", help="run ids or names; A, B or more")
    compare.add_argument("--experiment", metavar="NAME", help="compare every run of NAME")
    compare.add_argument(
        "--layers", type=lambda v: v.split(","), metavar="L1,L2", help="N runs: layers to show"
    )
    compare.add_argument(
        "--key",
        metavar="KEY",
        help="image key, e.g. activations/conv1 or activations/conv1/<probe>; default: the first "
        "activations/ key both runs have",
    )
    compare.add_argument(
        "--step", type=_step, metavar="N", help="default: the last step both runs logged KEY at"
    )
    compare.add_argument(
        "--stat",
        default="activation_mean",
        metavar="NAME",
        help="statistic to plot for KEY's layer: activation_mean (default), activation_std, "
        "activation_zero_fraction, dead_channel_fraction...",
    )
    compare.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="tracking server or store (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    compare.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        help="picture to write, .png or .jpg/.jpeg (default: compare-<A>-<B>-step<N>.png in the "
        "current directory)",
    )
    compare.add_argument("--scale", type=_scale, metavar="K", help="enlarge K times")
    compare.add_argument(
        "--cka",
        action="store_true",
        help="draw run A's layers x run B's layers by CKA, from the Gram matrices a "
        "RepresentationLogger kept (RUN_A, RUN_B: TensorBoard log directories or MLflow runs)",
    )
    compare.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    sweep = bool(args.experiment or args.layers) or len(args.runs) != 2
    if (args.experiment and args.runs) or (not args.experiment and len(args.runs) < 2):
        log.error("compare takes two or more RUNs, or --experiment NAME alone")
        return USAGE
    args.run_a, args.run_b = [*args.runs, "", ""][:2]
    if args.cka:
        return _compare_cka(args)
    try:
        from mlflow.exceptions import MlflowException

        from vizcallbacks.compare import compare_runs, compare_sweep, experiment_runs, image_format
        from vizcallbacks.mlflow_store.tracking_uri import TrackingUriError
        from vizcallbacks.sources.mlflow_runs import RunLookupError, connect, printable
    except ImportError as err:  # MLflow is an optional extra
        log.error("MLflow is not available (%s): pip install 'vizcallbacks[mlflow]'", err)
        return USAGE
    if args.output is not None:
        try:
            image_format(args.output)  # refused before anything is read or drawn
        except ValueError as err:
            log.error("%s", err)
            return USAGE
    try:
        client = connect(args.tracking_uri)
        if sweep:
            runs = experiment_runs(client, args.experiment) if args.experiment else args.runs
            result: Any = compare_sweep(client, runs, args.layers, args.step, args.stat, args.scale)
        else:
            result = compare_runs(
                client, args.run_a, args.run_b, args.key, args.step, args.stat, args.scale
            )
    except (RunLookupError, TrackingUriError) as err:
        log.error("%s", err)
        return USAGE
    except (ConnectionError, ImportError, MlflowException) as err:
        log.error("%s", short_text(err))
        return FAILED
    ids = "-".join(run.run_id[:8] for run in result.runs[:2]) + ("-etc" if sweep else "")
    output = args.output or Path(f"compare-{ids}-step{result.step}.png")
    try:
        result.save(output)
    except (OSError, ValueError) as err:
        log.error(
            "Could not write %s (%s). Pass --output with a writable .png or .jpg path.",
            output,
            err,
        )
        return USAGE
    if result.metric is None:
        log.warning(
            "Neither run logged %s for %s: the picture has no curves. Pass --stat with a logged "
            "statistic.",
            args.stat,
            result.key,
        )
    print(f"Wrote {printable(str(output))}: {result.summary()}")
    return 0


# report ----------------------------------------------------------------------------------------
def _compare_cka(args: argparse.Namespace) -> int:
    """``compare RUN_A RUN_B --cka``: write the picture, print the closest layers; exit status."""
    from PIL import Image

    from vizcallbacks.cka_compare import compare_cka, load_archive, output_name
    from vizcallbacks.compare import image_format

    try:
        output = args.output or output_name(args.run_a, args.run_b)
        fmt = image_format(output)
        (label_a, a), (label_b, b) = (
            load_archive(run, args.step, args.tracking_uri) for run in (args.run_a, args.run_b)
        )
        if label_a == label_b:
            label_a, label_b = f"A: {label_a}", f"B: {label_b}"
        result = compare_cka(a, b, (label_a, label_b))
    except (LookupError, ValueError, ImportError) as err:  # a mismatch is a ValueError
        log.error("%s", err)
        return USAGE
    except (ConnectionError, OSError) as err:
        log.error("%s", short_text(err))
        return FAILED
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(result.picture).convert("RGB").save(output, format=fmt)
    except OSError as err:
        log.error("Could not write %s (%s). Pass --output with a writable path.", output, err)
        return USAGE
    print(f"Wrote {output}: {result.summary()}")
    return 0


def _add_report(commands: argparse._SubParsersAction) -> None:
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


if __name__ == "__main__":
    sys.exit(main())
