"""A sweep of 4 training processes logging at once to one ``mlflow server`` on PostgreSQL with
proxied artifacts (``tests/sweep_run.py``: a small CNN, ActivationLogger + FilterLogger, 5 epochs,
MLflow and TensorBoard). Measured: the sweep's wall time, the CPU seconds of the MLflow server's
processes and of PostgreSQL's during it, and per step the time from the loggers' end of epoch
until ``MLflowWriter.wait()`` says the step is on the server.

    python -m benchmarks.sweep      # needs Debian's postgresql and psycopg2-binary
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.servers import MlflowServer
from tests.postgres_server import PostgresCluster, postgres_bin

__all__ = ["main", "tree_cpu_seconds"]

RUNS = 4
TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root_pid: int) -> float:
    """user + system CPU seconds of ``root_pid`` and its live descendants (from ``/proc``)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    tree, total = {root_pid}, 0.0
    for _ in range(4):  # parent -> children, four generations deep at most
        tree |= {pid for pid, (parent, _) in stats.items() if parent in tree}
    for pid in tree:
        total += stats.get(pid, (0, 0.0))[1]
    return total


def main() -> None:
    bin_dir = postgres_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="vizcallbacks-sweep-"))
    root.chmod(0o755)
    cluster = PostgresCluster(bin_dir, root / "cluster")
    cluster.root.mkdir()
    cluster.start()
    server = MlflowServer(root / "mlflow", store_uri=cluster.store_uri)
    server.root.mkdir()
    server.start()
    try:
        postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
        assert server._process is not None
        cpu_before = tree_cpu_seconds(server._process.pid), tree_cpu_seconds(postmaster)
        for signal_file in ("go", "back"):  # no pauses: the server stays up
            (root / signal_file).touch()
        started = time.perf_counter()
        procs = []
        for i in range(RUNS):
            (root / f"sweep-{i}").mkdir()
            command = [sys.executable, "-m", "tests.sweep_run", server.uri, "sweep", f"sweep-{i}"]
            procs.append(
                subprocess.Popen(
                    [*command, str(root / f"sweep-{i}"), "5", "clock"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            )
        lines = [p.communicate()[0].split() for p in procs]
        wall = time.perf_counter() - started
        mlflow_cpu = tree_cpu_seconds(server._process.pid) - cpu_before[0]
        postgres_cpu = tree_cpu_seconds(postmaster) - cpu_before[1]
        fits = [float(line[-2]) for line in lines]
        delivery = [float(line[-1]) for line in lines]
        print(
            "| runs | steps each | sweep wall s | fit s (max) | MLflow server CPU s | "
            "PostgreSQL CPU s | delivery per step ms (mean of runs, max run) |"
        )
        print("|---|---|---|---|---|---|---|")
        print(
            f"| {RUNS} | 6 | {wall:.1f} | {max(fits):.1f} | {mlflow_cpu:.1f} | "
            f"{postgres_cpu:.1f} | {1000 * sum(delivery) / RUNS:.0f} ({1000 * max(delivery):.0f}) |"
        )
    finally:
        server.stop()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
