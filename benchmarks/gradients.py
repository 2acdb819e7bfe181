"""GradientLogger's cost: ``python -m benchmarks.gradients [--out FILE]``.

Per logged step, process CPU (every thread) and wall: the gradient pass, the weights copied,
the records drawn and written to TensorBoard (``compute`` + ``view`` + write, as ``fit``'s
``on_epoch_end`` and the background thread do them), beside one training step
(``train_on_batch``) of the same 64-image batch: on the Fashion-MNIST CNN and on ResNet50 at
64 px. Then ``every_n_batches=50``: one batch log (weights read as numpy, norms, update ratios,
scalars written) divided by 50 training steps, its share of an epoch. Median of 5 after a warm-up.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np

from benchmarks.common import (
    Clock,
    Row,
    judged,
    machine_description,
    measured,
    progress,
    table_markdown,
)

__all__ = ["logger_rows", "main"]

REPEATS = 5
BATCH = 64
EVERY_N_BATCHES = 50


def _timed(call: Callable[[], object], repeats: int = REPEATS) -> tuple[list[float], list[float]]:
    """CPU and wall seconds of each of ``repeats`` calls after one warm-up call."""
    call()
    cpu, wall = [], []
    for _ in range(repeats):
        with Clock() as clock:
            call()
        cpu.append(clock.cpu)
        wall.append(clock.wall)
    return cpu, wall


def resnet50() -> keras.Model:
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def logger_rows(
    name: str, model: keras.Model, x: np.ndarray, y: np.ndarray, root: Path, limit: float
) -> list[Row]:
    """The logged step and the training step of one model, side by side."""
    import vizcallbacks as vc

    logger = vc.GradientLogger(
        (x, y), [vc.TensorBoardWriter(root / name)], every_n_batches=EVERY_N_BATCHES
    )
    logger.set_model(model)
    logger.on_train_begin()  # setup, the compile of the pass, step 0
    step = iter(range(1, 1000))

    def logged_step() -> None:
        number = next(step)
        logger.fanout.write(logger.view(logger.compute(), number), number)

    progress(f"{name}: logged step")
    cpu, wall = _timed(logged_step)
    progress(f"{name}: training step")
    train_cpu, train_wall = _timed(lambda: model.train_on_batch(x, y))
    progress(f"{name}: batch log")
    batch_cpu, _ = _timed(logger._log_batch)
    logger.finish()
    share = [100 * b / (EVERY_N_BATCHES * float(np.median(train_cpu))) for b in batch_cpu]
    return [
        judged(f"{name}: GradientLogger logged step, CPU", cpu, "s", limit),
        measured(f"{name}: GradientLogger logged step, wall", wall, "s"),
        measured(f"{name}: one training step of the same batch, CPU", train_cpu, "s"),
        measured(f"{name}: one training step of the same batch, wall", train_wall, "s"),
        judged(
            f"{name}: every_n_batches={EVERY_N_BATCHES}, share of an epoch (CPU)", share, "%", 0.5
        ),
    ]


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="write the markdown table here too")
    parser.add_argument("--skip-resnet", action="store_true", help="the Fashion-MNIST CNN only")
    args = parser.parse_args(argv)
    from benchmarks.epoch import fashion_cnn, load_data

    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        data = load_data(BATCH, 1)
        model = fashion_cnn()
        rows += logger_rows("Fashion-MNIST CNN", model, data.x, data.y, root, 0.025)
        if not args.skip_resnet:
            rng = np.random.default_rng(0)
            x = rng.random((BATCH, 64, 64, 3), dtype=np.float32)
            y = rng.integers(0, 10, BATCH)
            rows += logger_rows("ResNet50 64 px", resnet50(), x, y, root, 1.0)
    text = f"{machine_description()}\n\n{table_markdown(rows)}\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
