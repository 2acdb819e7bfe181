"""Row 11 logger by logger: ``python -m benchmarks.per_logger [--pairs 1] [--plain-cpu 63]``.

Each logger of the every-logger row (``benchmarks.fixed.every_logger_makers``) alone, on its own
TensorBoard + MLflow writers, its hooks called as ``fit`` calls them
(``benchmarks.steps.hook_loop``) for the demo's 5 epochs on the demo CNN, against a baseline
loop. CPU (every thread) over the baseline of ``on_train_begin`` (setup, tracing, step 0's
pass), of each step the logger logged after step 0 (the rest of the loop, step 0's rendering
included, over those steps) and of ``on_train_end`` (summary, drain, writers closed), and the
whole as a % of as many plain 60,000-image epochs' CPU. Alone, each logger pays its own
writers' opening and closing, which row 11's loggers share.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from benchmarks.common import (
    Row,
    machine_description,
    make_writers,
    measured,
    median,
    print_and_save,
    progress,
    table_markdown,
)
from benchmarks.fixed import every_logger, every_logger_makers
from benchmarks.steps import baseline, hook_loop, idle_rate

__all__ = ["PLAIN_EPOCH_CPU", "LoggerCost", "breakdown_markdown", "logger_costs", "logger_rows"]

# CPU seconds of one plain 60,000-image epoch of the demo CNN (benchmarks/RESULTS.md, rows 10
# and 11, 2026-12-06): the standalone run's denominator; ``benchmarks.overhead`` measures its own.
PLAIN_EPOCH_CPU = 63.0


@dataclass
class LoggerCost:
    """One logger alone, per pair: CPU seconds over the baseline loop."""

    name: str
    logged: int = 0  # steps logged after step 0
    setup: list[float] = field(default_factory=list)  # on_train_begin
    per_step: list[float] = field(default_factory=list)
    end: list[float] = field(default_factory=list)  # on_train_end
    total: list[float] = field(default_factory=list)


def _logged_after_step0(logger: Any) -> int:
    return max(1, len(logger.timings["publish"]) + len(logger.skipped_steps) - 1)


def logger_costs(
    model: keras.Model, data: Any, root: Path, pairs: int, epochs: int
) -> list[LoggerCost]:
    """Every logger of row 11 alone, ``pairs`` times, each loop after its own baseline."""
    costs = {name: LoggerCost(name) for name in every_logger_makers(data)}
    for pair in range(pairs):
        for name, make in every_logger_makers(data).items():
            base = baseline(model, epochs)
            rate = idle_rate(0.3)
            writers = make_writers(root, f"alone_{name}_{pair}")
            logger = make(writers)
            loop = hook_loop(model, [logger], writers, epochs)
            total = loop.cpu - base.cpu - rate * max(0.0, loop.wall - base.wall)
            setup, end = loop.begin_cpu - base.begin_cpu, loop.end_cpu - base.end_cpu
            cost = costs[name]
            cost.logged = _logged_after_step0(logger)
            cost.setup.append(setup)
            cost.end.append(end)
            cost.per_step.append((total - setup - end) / cost.logged)
            cost.total.append(total)
            progress(
                f"{name} alone, pair {pair + 1}: setup {setup:.2f} s, "
                f"{cost.per_step[-1]:.2f} s a logged step ({cost.logged}), end {end:.2f} s CPU"
            )
    return list(costs.values())


def logger_rows(costs: Sequence[LoggerCost], plain_cpu: float, epochs: int) -> list[Row]:
    """Four rows a logger (setup, per logged step, train end, share) and the shares' sum."""
    rows = []
    for c in costs:
        rows += [
            measured(f"11. {c.name} alone: on_train_begin CPU (setup, tracing, step 0's pass)",
                     c.setup, "s"),
            measured(f"11. {c.name} alone: CPU per logged step ({c.logged} logged after step 0 "
                     f"in {epochs} epochs)", c.per_step, "s"),
            measured(f"11. {c.name} alone: on_train_end CPU (summary, drain, writers closed)",
                     c.end, "s"),
            measured(f"11. {c.name} alone: added CPU over {epochs} epochs, % of plain",
                     [100 * t / (epochs * plain_cpu) for t in c.total], "%"),
        ]  # fmt: skip
    share = sum(median(c.total) for c in costs) / (epochs * plain_cpu)
    rows.append(Row(f"11. the loggers alone, summed: added CPU over {epochs} epochs, % of plain",
                    100 * share, "%"))  # fmt: skip
    return rows


def breakdown_markdown(costs: Sequence[LoggerCost], plain_cpu: float, epochs: int) -> str:
    """One line a logger: medians of setup, per logged step and train end CPU, and the share."""
    lines = [
        "| logger | setup CPU s | CPU s per logged step | logged steps | train end CPU s "
        f"| % of {epochs} plain epochs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in sorted(costs, key=lambda c: -median(c.total)):
        share = 100 * median(c.total) / (epochs * plain_cpu)
        lines.append(
            f"| {c.name} | {median(c.setup):.2f} | {median(c.per_step):.3f} | {c.logged} "
            f"| {median(c.end):.2f} | {share:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Train the demo CNN one short epoch, warm every logger once, then the breakdown."""
    import tempfile

    from benchmarks.epoch import fashion_cnn, load_data

    parser = argparse.ArgumentParser(prog="python -m benchmarks.per_logger", description=__doc__)
    parser.add_argument("--pairs", type=int, default=1, help="loops per logger (default 1)")
    parser.add_argument("--epochs", type=int, default=5, help="logged epochs (the demo's 5)")
    parser.add_argument(
        "--plain-cpu", type=float, default=PLAIN_EPOCH_CPU,
        help="CPU s of one plain 60,000-image epoch (default: RESULTS.md's)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write the tables here")
    args = parser.parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    keras.config.disable_interactive_logging()
    data = load_data(2_048, 11)
    model = fashion_cnn()
    model.fit(data.x, data.y, batch_size=32, epochs=1, verbose=0)
    with tempfile.TemporaryDirectory(prefix="vizcallbacks-per-logger-") as tmp:
        root = Path(tmp)
        hook_loop(model, every_logger(data, root, "warm"), [], 1)  # first use, untimed
        costs = logger_costs(model, data, root, args.pairs, args.epochs)
    rows = logger_rows(costs, args.plain_cpu, args.epochs)
    text = "\n\n".join(
        [
            f"Machine: {machine_description()}; plain epoch CPU {args.plain_cpu:.1f} s",
            breakdown_markdown(costs, args.plain_cpu, args.epochs),
            table_markdown(rows),
        ]
    )
    print_and_save(text + "\n", args.out)


if __name__ == "__main__":
    main()
