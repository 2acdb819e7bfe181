"""lenet5: a LeNet-5 variant on Fashion-MNIST with separate ReLU layers, pre- and post-ReLU maps.

``--padding valid`` (44,426 parameters, about 0.89 test accuracy after the default 30 epochs) or
``--padding same``; runs log to ``logs/lenet5/<padding>`` so one TensorBoard compares both.
``--padding both`` trains the two one after the other and, with MLflow on, draws them side by
side: ``python -m vizcallbacks compare`` on the two runs, written to
``logs/lenet5/valid_vs_same.png`` (``--compare-output``), with the command printed.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
from keras import layers

import vizcallbacks as vc
from experiments import common
from experiments.datasets import ImageSplit, load_fashion_mnist, scaled
from experiments.fashion_cnn import probe

__all__ = ["build_model", "compare_paddings", "main"]

NAME = "lenet5"
COMPARE_LAYER = "conv1"  # valid: 24x24 maps, same: 28x28; the border is where they differ


def build_model(padding: str = "valid") -> keras.Model:
    """Conv 6 5x5, ReLU, MaxPool, Conv 16 5x5, ReLU, MaxPool, Flatten, Dense 120, 84, 10."""
    if padding not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same'. Received: padding={padding!r}")
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(6, 5, padding=padding, name="conv1"),
            layers.Activation("relu", name="relu1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(16, 5, padding=padding, name="conv2"),
            layers.Activation("relu", name="relu2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(120, activation="relu", name="dense1"),
            layers.Dense(84, activation="relu", name="dense2"),
            layers.Dense(10, activation="softmax", name="probs"),
        ],
        name=f"{NAME}_{padding}",
    )


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--padding",
        choices=("valid", "same", "both"),
        default="valid",
        help="both: train valid then same and draw the two MLflow runs side by side",
    )
    parser.add_argument(
        "--compare-output",
        type=Path,
        default=None,
        metavar="PATH",
        help="with --padding both: the comparison PNG (default <log dir>/valid_vs_same.png)",
    )
    parser.add_argument(
        "--cka-probes",
        type=int,
        default=256,
        metavar="N",
        help="test images the layers' CKA is computed over (default 256; at least 16)",
    )


def _train(
    args: argparse.Namespace, full: ImageSplit, images: np.ndarray, names: list[str]
) -> common.RunResult:
    run = common.Run(
        NAME, args, log_dir=Path("logs") / NAME / args.padding, run_name=f"{NAME}-{args.padding}"
    )
    model = build_model(args.padding)
    loggers = [
        vc.ActivationLogger(images, run.writers, probe_names=names),
        vc.FilterLogger(run.writers),
        vc.RepresentationLogger(scaled(full.x_test[: args.cka_probes]), run.writers),
    ]
    return common.train_classifier(run, model, full.limit(args.max_samples), loggers)


def main(argv: Sequence[str] | None = None) -> common.RunResult:
    """Train one padding (or both, then compare them); return the (last) run's result."""
    args = common.parse_args(
        NAME,
        argv,
        epochs=30,
        description=__doc__.splitlines()[0],
        data_help="as for fashion_cnn: a folder of the four .gz files or an .npz",
        add_arguments=_add_arguments,
    )
    full = load_fashion_mnist(args.data)
    images, names = probe(full)
    if args.padding != "both":
        return _train(args, full, images, names)

    base = Path(args.log_dir or Path("logs") / NAME)
    results = {}
    for padding in ("valid", "same"):
        one = copy.copy(args)
        one.padding, one.log_dir = padding, base / padding
        results[padding] = _train(one, full, images, names)
    if args.mlflow:
        output = args.compare_output or base / "valid_vs_same.png"
        key = f"activations/{COMPARE_LAYER}/{names[0]}"
        runs = (results["valid"].mlflow_run_id, results["same"].mlflow_run_id)
        compare_paddings(common.mlflow_tracking_uri(), key, output, *runs)
    return results["same"]


def compare_paddings(
    tracking_uri: str, key: str, output: Path, valid: str | None, same: str | None
) -> Path:
    """Draw the ``valid`` and ``same`` runs side by side at ``output``; print the command."""
    from vizcallbacks.compare import compare_runs
    from vizcallbacks.sources.mlflow_runs import connect

    if valid is None or same is None:
        raise LookupError(
            f"the {NAME} runs are not on MLflow at {tracking_uri} yet (was the server down?); "
            "send them with `python -m vizcallbacks sync`, then run the compare command"
        )
    result = compare_runs(connect(tracking_uri), valid, same, key=key)
    path = result.save(output)
    print(
        f"\nvalid vs same padding, {result.summary()}\n"
        f"Drawn at {path}; the same picture (or another --key / --step) with:\n"
        f"  python -m vizcallbacks compare {valid} {same} --key {key} "
        f"--tracking-uri {tracking_uri} --output {path}"
    )
    return path


if __name__ == "__main__":
    common.cli(main)
