"""The whole cost of logging: ``python -m benchmarks.overhead [--pairs 3] [--quick] [--out F]``.

One run measures every target side by side, plain and logged runs interleaved (A B A B), with
process CPU time (user + sys of every thread and child: the loggers' background threads and
MLflow's sender share the cores with training) next to wall time:

1. a whole Fashion-MNIST epoch's ``fit`` with ActivationLogger + FilterLogger writing to
   TensorBoard and MLflow, drain at train end included, against a plain one (``epoch``);
2. CPU per logged step of the loggers' hooks in a loop, over a baseline loop (``steps``);
3. the tutorial way against vizcallbacks, and the time ``on_epoch_end`` blocks (``steps``);
4. ResNet50 with ActivationLogger on every layer: blocking, background CPU, RSS (``large``);
5. cost per step against layers, probes and channels (``large``);
6. the notebook functions called again and again, against their peers (``notebook``);
7. memory over 100 logged epochs; 8. VGG16's logged step; where one step's time goes (``stages``);
10. fixed costs: ``fit()`` to the first batch, the last epoch's end to ``fit`` returning, for the
    demo CNN (TensorBoard + MLflow) and ResNet50 at 64 px (every layer), and MLflow's own schema
    creation apart; 11. every logger on the demo CNN over its 5 epochs (``fixed``), then each
    of those loggers alone: setup, per logged step, train end (``per_logger``).

Each target row gives the median, min to max over the pairs and a verdict: holds when every pair
meets it, does not hold when none does, inconclusive when the spread straddles it. About 19
minutes on 2 cores; ``--quick`` (tiny sizes, under about a minute) is the smoke run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras

from benchmarks import epoch, fixed, large, notebook, per_logger, stages, steps
from benchmarks.common import (
    Row,
    judged,
    machine_description,
    median,
    mlflow_uri,
    print_and_save,
    progress,
    table_markdown,
)

__all__ = ["QUICK", "Config", "main", "run"]


@dataclass(frozen=True)
class Config:
    """Sizes of every measurement; ``QUICK`` is the smoke configuration."""

    pairs: int = 3
    samples: int = 60_000
    batch_size: int = 32
    warm_samples: int = 1_024  # a short fit first traces the train step outside the timed epoch
    probe_images: int = 11  # the experiments' probe: a bag + the first test image of each class
    loop_steps: int = 8  # logged steps per loop (targets 2 and 3)
    tutorial_steps: int = 3
    tutorial_layers: int | None = None  # None: every layer, as the tutorial does
    resnet_size: int = 224
    resnet_steps: int = 50  # the target: memory flat over 50 logged steps (about 2 minutes)
    scaling_steps: int = 4
    memory_epochs: int = 100
    memory_warm_epochs: int = 3
    memory_samples: int = 256
    vgg_size: int = 224
    vgg_steps: int = 3
    stage_repeats: int = 3
    fixed_samples: int = 2_048  # demo CNN images per epoch of the fixed-cost fits
    fixed_size: int = 64  # ResNet50's input size there
    fixed_resnet_samples: int = 256  # ResNet50's images per epoch there
    every_pairs: int = 2
    every_epochs: int = 5  # the demo's


QUICK = Config(
    pairs=2,
    samples=256,
    warm_samples=64,
    probe_images=2,
    loop_steps=2,
    tutorial_steps=1,
    tutorial_layers=1,
    resnet_size=32,
    resnet_steps=4,
    scaling_steps=1,
    memory_epochs=4,
    memory_warm_epochs=1,
    memory_samples=32,
    vgg_size=32,
    vgg_steps=1,
    stage_repeats=1,
    fixed_samples=64,
    fixed_size=32,
    fixed_resnet_samples=32,
    every_pairs=1,
    every_epochs=2,
)


def stage_rows(seconds: dict[str, float], probes: int) -> list[Row]:
    images = int(seconds["images"])
    labels = [
        ("forward", f"forward pass, all layers, {probes} probe images (training thread)"),
        ("statistics", "statistics, all layers"),
        ("render", f"rendering: tiling + colour + evolution rows ({images} images)"),
        ("encode", f"PNG encoding, once per picture (Image.png, {images})"),
        ("encode_pillow", f"the same {images} pictures through Pillow's PNG encoder (before)"),
        ("write_tensorboard", "writing to TensorBoard (its PNG encoding included)"),
        ("write_mlflow", "writing to the MLflow spool (PNG encoding and WebP previews included)"),
        ("deliver_mlflow", "MLflow delivery to the store (sender thread: files, metrics)"),
    ]
    return [Row(f"9. stage, wall: {label}", 1000 * seconds[key], "ms") for key, label in labels]


def step_costs(model: keras.Model, data: epoch.Data, cfg: Config, root: Path) -> dict:
    """Targets 2 and 3: the four configurations, one warm-up loop each, then interleaved pairs."""
    one = data.probe[:1]
    setups = {
        "tensorboard": steps.tensorboard_only(one),
        "both": steps.both_writers(one),
        "demo": steps.demo(data.probe, data.names),
        "tutorial": steps.tutorial(one, cfg.tutorial_layers),
    }
    for name, setup in setups.items():  # first use of each code path, untimed
        loggers, writers = setup(root, f"warm_{name}")
        steps.hook_loop(model, loggers, writers, 1)
    costs = {name: steps.StepCost(name) for name in setups}
    for pair in range(cfg.pairs):
        for name, setup in setups.items():
            n = cfg.tutorial_steps if name == "tutorial" else cfg.loop_steps
            steps.step_cost(costs[name], model, setup, root, n, pair)
    return costs


def epoch_bound_row(plain_cpu: Sequence[float], both: steps.StepCost) -> Row:
    """Target 1 without the epochs' noise: what one such fit logs (setup, steps 0 and 1, the
    summary included in the per-step figure) as measured in the hook loop, over a plain epoch."""
    plain = median(list(plain_cpu))
    per_fit = [b + 2 * s for b, s in zip(both.begin, both.per_step, strict=True)]
    return judged(
        "1. the same from the hook loop: setup + 2 logged steps (TensorBoard + MLflow, 1 probe) "
        "in CPU, % of the plain epoch's CPU",
        [100 * c / plain for c in per_fit],
        "%",
        1,
    )


# Running ------------------------------------------------------------------------------------
def run(cfg: Config, root: Path) -> tuple[list[Row], list[large.Scale]]:
    """Every measurement in order, logs and MLflow store under ``root``: rows and the scaling."""
    import mlflow

    mlflow.MlflowClient(mlflow_uri(root)).search_experiments()  # create the store untimed
    data = epoch.load_data(cfg.samples, cfg.probe_images)
    progress(f"data: {data.source}; training on {len(data.x):,} images")
    cost = epoch.measure_epochs(data, cfg.pairs, cfg.batch_size, cfg.warm_samples, root)
    model = cost.model
    assert model is not None
    costs = step_costs(model, data, cfg, root)
    rows = epoch.epoch_rows(cost, len(data.x), cfg.batch_size)
    rows.append(epoch_bound_row(cost.plain_cpu, costs["both"]))
    rows += steps.step_rows(costs, len(data.probe))
    rows += large.resnet_rows(root, cfg.resnet_size, cfg.resnet_steps, cfg.resnet_size != 224)
    scaling = large.scaling(root, cfg.scaling_steps, cfg.resnet_size != 224)
    rows += large.scaling_rows(scaling)
    progress("scaling done")
    rows += notebook.notebook_rows(model, data.probe)
    rows += epoch.memory_rows(
        data, root, cfg.memory_epochs, cfg.memory_warm_epochs, cfg.memory_samples
    )
    progress("memory done")
    rows += large.vgg_rows(root, cfg.vgg_size, cfg.vgg_steps)
    seconds = stages.stage_seconds(model, data.probe, root, cfg.stage_repeats)
    rows += stage_rows(seconds, len(data.probe))
    quick = cfg.resnet_size != 224
    rows += fixed.fixed_rows(
        model, data, root, cfg.pairs, cfg.fixed_samples, cfg.fixed_size,
        cfg.fixed_resnet_samples, quick,
    )  # fmt: skip
    progress("fixed costs done")
    rows += fixed.every_logger_rows(
        model, data, root, cost.plain_cpu, cost.plain_wall, cfg.every_pairs, cfg.every_epochs
    )
    alone = per_logger.logger_costs(model, data, root, cfg.every_pairs, cfg.every_epochs)
    rows += per_logger.logger_rows(alone, median(cost.plain_cpu), cfg.every_epochs)
    return rows, scaling


def report(rows: Sequence[Row], scaling: Sequence[large.Scale], header: Sequence[str]) -> str:
    """The header lines, the targets, the scaling table, then every measurement, as markdown."""
    targets = [row for row in rows if row.target]
    return "\n".join(
        [
            *header,
            "",
            "Targets:",
            "",
            table_markdown(targets),
            "",
            "Cost per logged step against the model's size (ActivationLogger + FilterLogger, "
            "32x32 RGB inputs; CPU ms per step, all threads, over a baseline loop):",
            "",
            large.scaling_markdown(scaling),
            "",
            "Every measurement:",
            "",
            table_markdown(rows),
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__)
    parser.add_argument("--pairs", type=int, help="plain/logged epoch pairs (default 3)")
    parser.add_argument("--samples", type=int, help="training images per epoch (default 60000)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--out", type=Path, help="also write the tables here (and a .json)")
    parser.add_argument("--workdir", type=Path, help="keep the logs here (default: a temp dir)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else Config()
    overrides = {k: getattr(args, k) for k in ("pairs", "samples") if getattr(args, k)}
    return dataclasses.replace(cfg, **overrides), args


def main(argv: Sequence[str] | None = None) -> list[Row]:
    cfg, args = parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    keras.config.disable_interactive_logging()
    # The tutorial's sub-models and the many loggers made here retrace by design: not news.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    started = time.perf_counter()
    header = [f"Machine: {machine_description()}"]
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        rows, scaling = run(cfg, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="vizcallbacks-benchmark-") as tmp:
            rows, scaling = run(cfg, Path(tmp))
    command = " ".join(["python -m benchmarks.overhead", *(argv or sys.argv[1:])])
    header += [
        f"Command: `{command}`; {time.strftime('%Y-%m-%d %H:%M')}; whole run "
        f"{time.perf_counter() - started:.0f} s; load average at the end "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        f"Configuration: {dataclasses.asdict(cfg)}",
    ]
    text = report(rows, scaling, header)
    print_and_save(text, args.out)
    if args.out is not None:
        args.out.with_suffix(".json").write_text(
            json.dumps([dataclasses.asdict(r) for r in rows], indent=1, default=str)
        )
    return rows


if __name__ == "__main__":
    main()
