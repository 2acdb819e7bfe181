"""What the five experiments share: the command line, the writers and the closing summary.

Each experiment builds its model, data and callbacks; this module turns ``--log-dir`` and
``--mlflow`` into writers, runs ``fit`` with Keras' TensorBoard callback beside ours, and prints
what was logged with the exact commands to look at it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

import vizcallbacks as vc
from experiments.datasets import DataError, ImageSplit, scaled
from vizcallbacks.records import File, Histogram, Image, Params, Record, Scalars, Text

__all__ = [
    "EpochMetrics",
    "Run",
    "RunResult",
    "TagRecorder",
    "cli",
    "parse_args",
    "train_classifier",
]

log = logging.getLogger(__name__)


def _count(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, received {value!r}")
    return n


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 1, received {value!r}")
    return n


def parse_args(
    experiment: str,
    argv: Sequence[str] | None,
    *,
    epochs: int,
    description: str,
    data_help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options every experiment takes, plus its own (``add_arguments``)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m experiments.{experiment}", description=description
    )
    parser.add_argument("--epochs", type=_count, default=epochs, help=f"default {epochs}")
    parser.add_argument(
        "--max-samples", type=_positive, default=None, help="train and test on at most N images"
    )
    parser.add_argument("--log-dir", type=Path, default=None, help=f"default logs/{experiment}")
    parser.add_argument(
        "--mlflow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also log to MLflow (sqlite:///mlflow.db, or $MLFLOW_TRACKING_URI); default on",
    )
    parser.add_argument("--data", type=Path, default=None, help=data_help)
    if add_arguments is not None:
        add_arguments(parser)
    return parser.parse_args(argv)


class TagRecorder:
    """A writer that keeps only which tags were logged at which steps, for the summary."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        self._lock = threading.Lock()

    def _add(self, kind: str, tag: str, step: int) -> None:
        with self._lock:
            self.steps[kind][tag].add(step)

    def check(self) -> None:
        pass

    def last_step(self) -> int:
        return -1

    def write(self, records: Sequence[Record], step: int) -> None:
        for record in records:
            if isinstance(record, Image):
                self._add("images", record.tag, step)
            elif isinstance(record, Scalars):
                for tag in record.values:
                    self._add("scalars", tag, step)
            elif isinstance(record, Histogram):
                self._add("histograms", record.tag, step)
            elif isinstance(record, Text):
                self._add("text", record.tag, step)
            elif isinstance(record, File):
                self._add("files", record.name, -1)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def lines(self) -> list[str]:
        """One line per kind: how many tags, their families and the steps logged."""
        out = []
        for kind, tags in sorted(self.steps.items()):
            if kind == "files":
                out.append(
                    f"  {kind:<10} {len(tags):>4} in files/: {', '.join(sorted(tags)[:3])}..."
                )
                continue
            steps = sorted(set().union(*tags.values()))
            families = sorted({t.split("/")[0] for t in tags})
            span = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}..{steps[-1]}"
            out.append(f"  {kind:<10} {len(tags):>4} tags, {span}: {', '.join(families)}")
        return out


class EpochMetrics(keras.callbacks.Callback):
    """The run's options once, then Keras' epoch metrics (loss, val_*...) at step k after epoch k.

    Used for MLflow only: TensorBoard gets the metrics from ``keras.callbacks.TensorBoard``.
    """

    def __init__(self, writers: list[Any], params: Mapping[str, Any]) -> None:
        super().__init__()
        self.writers = writers
        self.params_to_log = dict(params)
        self._failed: set[int] = set()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._each([Params(self.params_to_log)], 0)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        self._each([Scalars(values)], epoch + 1)

    def _each(self, records: list[Record], step: int) -> None:
        for writer in self.writers:
            try:
                writer.write(records, step)
            except Exception as err:  # a failing backend must not stop training
                if id(writer) not in self._failed:
                    self._failed.add(id(writer))
                    log.warning(
                        "%s.write failed (%s: %s)", type(writer).__name__, type(err).__name__, err
                    )


def mlflow_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else MLflow's own default made absolute: ``./mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def _mlflow_writer(experiment: str, run_name: str | None = None) -> Any | None:
    try:
        import mlflow  # noqa: F401

        writer_class = vc.MLflowWriter
    except ImportError as err:
        log.warning(
            "MLflow is not available (%s); logging to TensorBoard only. Fix: "
            "pip install 'vizcallbacks[mlflow]', or pass --no-mlflow.",
            err,
        )
        return None
    return writer_class(  # report: the run's one-file HTML report, in its Artifacts tab
        tracking_uri=mlflow_tracking_uri(),
        experiment_name=experiment,
        run_name=run_name,
        report=True,
    )


@dataclass
class RunResult:
    """What a run produced: where it logged, its metrics, how long it took, on which data."""

    log_dir: Path
    metrics: dict[str, float]
    seconds: float
    data_source: str
    logged: dict[str, dict[str, set[int]]] = field(default_factory=dict)
    mlflow_run_id: str | None = None


class Run:
    """One experiment run: writers for ``--log-dir``/``--mlflow``, fit, the closing summary."""

    def __init__(
        self,
        experiment: str,
        args: argparse.Namespace,
        log_dir: Path | None = None,
        run_name: str | None = None,
    ):
        self.experiment = experiment
        self.args = args
        self.log_dir = Path(args.log_dir or log_dir or Path("logs") / experiment)
        self.tensorboard = vc.TensorBoardWriter(self.log_dir)
        self.tensorboard.check()  # an unwritable --log-dir fails now, before data and model
        self.recorder = TagRecorder()
        self.mlflow = _mlflow_writer(experiment, run_name) if args.mlflow else None
        self.writers: list[Any] = [self.tensorboard, self.recorder]
        if self.mlflow is not None:
            self.writers.insert(1, self.mlflow)
        self.started = time.perf_counter()

    def callbacks(self, *loggers: keras.callbacks.Callback) -> list[keras.callbacks.Callback]:
        """Keras' TensorBoard callback (curves beside our images), MLflow metrics, ``loggers``."""
        extra: list[keras.callbacks.Callback] = [keras.callbacks.TensorBoard(str(self.log_dir))]
        if self.mlflow is not None:
            options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()}
            params = {"experiment": self.experiment, **options, "log_dir": str(self.log_dir)}
            extra.append(EpochMetrics([self.mlflow], params))
        return [*extra, *loggers]

    def log_once(self, model: keras.Model, loggers: Sequence[keras.callbacks.Callback]) -> None:
        """Log ``model`` as it is, once (step 0), without training: ``--epochs 0``."""
        for callback in loggers:
            callback.set_model(model)
            callback.on_train_begin()
        for callback in loggers:
            callback.on_train_end()

    def finish(self, metrics: Mapping[str, float], data_source: str) -> RunResult:
        """Print what was logged, the metrics and the commands to view them; return them."""
        seconds = time.perf_counter() - self.started
        result = RunResult(
            self.log_dir,
            dict(metrics),
            seconds,
            data_source,
            dict(self.recorder.steps),
            None if self.mlflow is None else self.mlflow.logged_run_id,
        )
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "no training"
        lines = [
            "",
            f"{self.experiment}: {shown} in {_duration(seconds)} on {data_source}",
            f"Logged to {self.log_dir}:",
            *self.recorder.lines(),
            "View:",
            f"  {self.tensorboard.view_command()}",
        ]
        if self.mlflow is not None:
            uri = mlflow_tracking_uri()
            remote = uri.startswith(("http://", "https://"))
            lines.append(f"  open {uri}" if remote else f"  mlflow ui --backend-store-uri {uri}")
        print("\n".join(lines))
        return result


def train_classifier(
    run: Run, model: keras.Model, split: ImageSplit, loggers: Sequence[keras.callbacks.Callback]
) -> RunResult:
    """Adam + sparse cross-entropy on ``split`` (test set as validation), then the summary."""
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x_test, y_test = scaled(split.x_test), split.y_test
    model.fit(
        scaled(split.x_train),
        split.y_train,
        epochs=run.args.epochs,
        validation_data=(x_test, y_test),
        callbacks=run.callbacks(*loggers),
    )
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return run.finish({"test_accuracy": float(accuracy)}, split.describe())


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"


def cli(main: Callable[[Sequence[str] | None], Any]) -> None:
    """Run ``main`` as a command: log lines on stderr, data errors as one line and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        main(None)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
