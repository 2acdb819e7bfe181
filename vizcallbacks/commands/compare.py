"""``python -m vizcallbacks compare RUN...``: N logged runs side by side, or two by CKA."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from vizcallbacks.commands import FAILED, USAGE, short_text

__all__ = ["add_compare"]

log = logging.getLogger("vizcallbacks")


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


def add_compare(commands: argparse._SubParsersAction) -> None:
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
