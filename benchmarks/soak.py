"""The soak: hundreds of epochs of the Fashion-MNIST CNN with the three loggers of the README's
example (ActivationLogger, FilterLogger, GradCAMLogger) and both writers, a small slice of data
per epoch. Prints RSS after epoch 20 and at the end, event-file and spool bytes against steps,
how long ``fit`` takes to return after the last epoch, and whether the dashboard's network index
and the one-file report still build from what was logged.

``python -m benchmarks.soak --epochs 300`` (the full soak: about 300 x the per-epoch time).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras

from benchmarks.common import make_writers, progress, rss_mb
from benchmarks.epoch import fashion_cnn, load_data

__all__ = ["main"]

WARM_EPOCHS = 20  # RSS growth is counted from here on


def directory_bytes(path: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


class Soak(keras.callbacks.Callback):
    """Samples RSS and bytes on disk at chosen epochs; notes when the last epoch ended."""

    def __init__(self, root: Path, epochs: int) -> None:
        super().__init__()
        self.root, self.epochs = root, epochs
        self.samples: list[tuple[int, float, int, int]] = []  # epoch, RSS MB, event, spool bytes
        self.last_epoch_end = 0.0

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        done = epoch + 1
        if done in (1, WARM_EPOCHS) or done % 20 == 0 or done == self.epochs:
            gc.collect()
            events = directory_bytes(self.root / "tensorboard", "events.out.tfevents.*")
            spool = directory_bytes(self.root / "spool", "*")
            self.samples.append((done, rss_mb(), events, spool))
            progress(f"epoch {done}: RSS {rss_mb():.0f} MB, events {events:,} B, spool {spool:,} B")
        self.last_epoch_end = time.perf_counter()


def main(argv: Sequence[str] | None = None) -> None:
    import vizcallbacks as vc
    from vizcallbacks.dashboard.network import network_index
    from vizcallbacks.dashboard.report import build_report
    from vizcallbacks.sources import read_source

    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--samples", type=int, default=256, help="images per epoch")
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="vizcallbacks-soak-"))
    data = load_data(args.samples * 8, 1)
    print(f"data: {data.source}")
    model = fashion_cnn()
    writers = make_writers(root, "soak")
    loggers = [
        vc.ActivationLogger(data.probe, writers),
        vc.FilterLogger(writers),
        vc.GradCAMLogger(data.probe, writers),
    ]
    soak = Soak(root, args.epochs)
    started = time.perf_counter()
    model.fit(
        data.x, data.y, batch_size=32, epochs=args.epochs, steps_per_epoch=args.samples // 32,
        verbose=0, callbacks=[*loggers, soak],
    )  # fmt: skip
    returned = time.perf_counter()
    progress(f"fit: {returned - started:.0f} s, incl. the loggers' train end and the delivery")
    by_epoch = {s[0]: s for s in soak.samples}
    warm = by_epoch.get(WARM_EPOCHS, soak.samples[0])
    end = soak.samples[-1]
    print(f"RSS growth from epoch {warm[0]} to {end[0]}: {end[1] - warm[1]:.1f} MB")
    for epoch, rss, events, spool in soak.samples:
        print(f"epoch {epoch:4d}: RSS {rss:7.1f} MB, event files {events / epoch:9,.0f} B/epoch, "
              f"spool {spool:,} B")  # fmt: skip
    print(f"fit returned {returned - soak.last_epoch_end:.2f} s after the last epoch")
    clock = time.perf_counter()
    (run,) = read_source(str(root / "tensorboard" / "soak")).runs()
    index = network_index(run)
    print(f"network index: {len(index['layers'])} layers, {len(index['steps'])} steps, "
          f"{time.perf_counter() - clock:.1f} s")  # fmt: skip
    clock = time.perf_counter()
    report = build_report(str(root / "tensorboard" / "soak"), root / "report.html")
    print(f"report: {report.stat().st_size:,} B in {time.perf_counter() - clock:.1f} s")


if __name__ == "__main__":
    main()
