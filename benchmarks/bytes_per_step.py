"""What each kind of picture costs in bytes per logged step, in TensorBoard and in MLflow.

Runs the README demo (``python -m experiments.fashion_cnn``, its four loggers and 11 probes) on
the shipped Fashion-MNIST subset in a fresh folder, with MLflow on a SQLite store there, then
reads back what was stored: the PNG bytes in the event files by tag kind (the first segment of
the tag), and the run's artifacts by kind: the PNGs, the ``+compressed.webp`` previews the run
page shows, the train-end GIFs and the one-file report. Every figure is divided by the number of
logged steps (epochs + 1), so runs of any length compare.

    python -m benchmarks.bytes_per_step [--epochs N] [--max-samples N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from vizcallbacks.mlflow_store.image_files import IMAGES_DIR, parse_image_name

__all__ = ["event_file_bytes", "main", "mlflow_bytes"]

ROOT = Path(__file__).resolve().parent.parent


def event_file_bytes(log_dir: Path) -> Counter[str]:
    """PNG bytes in the event files under ``log_dir``, by tag kind (images only; the rest of the
    file, scalars, histograms and texts, under ``(other)``)."""
    sizes: Counter[str] = Counter()
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        total = path.stat().st_size
        images = 0
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name != "images":
                    continue
                png = sum(len(b) for b in value.tensor.string_val[2:])
                sizes[value.tag.partition("/")[0]] += png
                images += png
        sizes["(other)"] += total - images
    return sizes


def mlflow_bytes(artifacts: Path) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """The run's artifacts: PNG bytes and preview bytes by image kind, other files by name."""
    pngs: Counter[str] = Counter()
    previews: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for path in artifacts.rglob("*"):
        if not path.is_file():
            continue
        relative = path.relative_to(artifacts).as_posix()
        size = path.stat().st_size
        if relative.startswith(f"{IMAGES_DIR}/") and relative.endswith("+compressed.webp"):
            original = relative.removesuffix("+compressed.webp") + ".png"
            logged = parse_image_name(original)
            previews[logged.key.partition("/")[0] if logged else "(unknown)"] += size
        elif relative.startswith(f"{IMAGES_DIR}/") and (logged := parse_image_name(relative)):
            pngs[logged.key.partition("/")[0]] += size
        else:
            others[relative.rsplit(".", 1)[-1] if "." in relative else relative] += size
    return pngs, previews, others


def _run_demo(folder: Path, epochs: int, max_samples: int) -> None:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.fashion_cnn",
            "--epochs",
            str(epochs),
            "--max-samples",
            str(max_samples),
            "--log-dir",
            str(folder / "logs"),
            "--data",
            str(ROOT / "experiments" / "data" / "fashion_mnist_subset.npz"),
        ],
        cwd=folder,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _kb(value: float) -> str:
    return f"{value / 1024:,.0f}"


def table(
    steps: int,
    board: Counter[str],
    pngs: Counter[str],
    previews: Counter[str],
    others: Counter[str],
) -> str:
    """Markdown: KiB per logged step by kind, TensorBoard beside MLflow's PNGs and previews."""
    kinds = sorted(set(board) | set(pngs) | set(previews), key=lambda k: -board.get(k, 0))
    lines = [
        "| kind | TensorBoard KiB/step | MLflow PNG KiB/step | MLflow preview KiB/step |",
        "|---|---:|---:|---:|",
    ]
    for kind in kinds:
        lines.append(
            f"| {kind} | {_kb(board[kind] / steps)} | {_kb(pngs[kind] / steps)} "
            f"| {_kb(previews[kind] / steps)} |"
        )
    lines.append(
        f"| **all** | {_kb(sum(board.values()) / steps)} | {_kb(sum(pngs.values()) / steps)} "
        f"| {_kb(sum(previews.values()) / steps)} |"
    )
    rest = ", ".join(f"{name} {_kb(size / steps)}" for name, size in others.most_common())
    lines.append(f"\nOther MLflow artifacts, KiB per logged step: {rest}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bytes_per_step")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-samples", type=int, default=600)
    parser.add_argument("--keep", type=Path, help="run in this new folder and keep it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vc-bytes-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        _run_demo(folder, args.epochs, args.max_samples)
        steps = args.epochs + 1
        board = event_file_bytes(folder / "logs")
        (artifacts,) = [p for p in (folder / "mlruns").glob("*/*/artifacts") if p.is_dir()] or [
            p for p in folder.rglob("artifacts") if p.is_dir()
        ]
        pngs, previews, others = mlflow_bytes(artifacts)
    text = table(steps, board, pngs, previews, others)
    print(text)
    return text


if __name__ == "__main__":
    main()
