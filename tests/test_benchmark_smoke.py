"""The benchmark in its smoke configuration (``--quick``), so that it never rots.

Only the shape of the result is checked (every target row present with finite numbers, a
spread and a verdict; the JSON matches the table): timings on a shared CI machine say nothing,
so there are no wall-clock assertions.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the whole benchmark in a subprocess: minutes, not seconds

ROOT = Path(__file__).resolve().parents[1]

HEADER = "| measurement | value | min to max | unit | target | verdict |"
VERDICTS = ("holds", "**does not hold**", "inconclusive")

# The start of each target row, in order: targets 1 to 4, memory (7), fixed costs (10) and every
# logger at once (11).
TARGETS = [
    "1. added CPU time of a whole epoch's fit incl. drain",
    "1. added wall time of the same fit incl. drain",
    "1. the same from the hook loop",
    "2. CPU per logged step, 1 probe, TensorBoard alone",
    "2. CPU per logged step, 1 probe, TensorBoard + MLflow",
    "2. CPU per logged step, the 2-probe demo",
    "3. whole work, tutorial way / vizcallbacks",
    "3. blocking: on_epoch_end",
    "4. 8-layer conv stack 32x32 (quick): on_epoch_end blocking",
    "4. 8-layer conv stack 32x32 (quick): background CPU per step",
    "4. 8-layer conv stack 32x32 (quick): RSS growth",
    "7. RSS growth over 4 logged epochs",
    "10. demo CNN (Activation + Filter + GradCAM loggers, TensorBoard + MLflow): fit() to the",
    "10. demo CNN: last epoch end to fit returning",
    "10. 8-layer conv stack 32 px (every layer",
    "10. 8-layer conv stack 32 px: last epoch end",
    "11. every logger, demo CNN, TensorBoard + MLflow: added CPU over 2 epochs",
    "11. every logger: the training thread's added wall",
    "11. the three default loggers, demo CNN",
    "11. the three default loggers: the training thread's added wall",
]
# Every section of the issue has rows in the table of every measurement.
SECTIONS = [f"{n}. " for n in range(1, 12)]


def tables(markdown: str) -> list[list[list[str]]]:
    """Each result table of the report: its body rows as lists of stripped cells."""
    found: list[list[list[str]]] = []
    inside = False
    for line in markdown.splitlines():
        if line.startswith(HEADER):
            found.append([])
            inside = True
        elif line.startswith("| ") and inside:
            found[-1].append([cell.strip() for cell in line.strip("|").split("|")])
        elif not line.startswith("|"):
            inside = False
    return found  # the |---| separator line does not start with "| "


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run ``python -m benchmarks.overhead --quick`` once; the path of its markdown table."""
    tmp = tmp_path_factory.mktemp("benchmark")
    out = tmp / "results.md"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env = {k: v for k, v in env.items() if not k.startswith("MLFLOW_")}
    command = [sys.executable, "-m", "benchmarks.overhead", "--quick", "--out", str(out)]
    command += ["--workdir", str(tmp / "work")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_quick_benchmark_states_every_target_with_numbers_and_a_verdict(quick_run: Path) -> None:
    found = tables(quick_run.read_text())
    assert len(found) == 2, found
    targets = found[0]
    assert len(targets) == len(TARGETS), [row[0] for row in targets]
    for prefix, row in zip(TARGETS, targets, strict=True):
        assert row[0].startswith(prefix), (prefix, row)
        assert len(row) == 6, row
        assert math.isfinite(float(row[1].replace(",", ""))), row
        low, high = (float(v.replace(",", "")) for v in row[2].split(" to "))
        assert low <= float(row[1].replace(",", "")) <= high, row
        assert row[4], row  # the target
        assert row[5].startswith(VERDICTS) and "(" in row[5], row  # a verdict and its reason


def test_quick_benchmark_has_the_scaling_table(quick_run: Path) -> None:
    text = quick_run.read_text()
    assert "| conv layers | probes | channels |" in text
    section = text.split("| conv layers | probes | channels |")[1].split("\n\n")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) >= 2
    for row in rows:
        assert all(math.isfinite(float(c)) for c in row.strip("|").split("|")), row


def test_quick_benchmark_every_measurement_is_finite_and_every_section_there(
    quick_run: Path,
) -> None:
    rows = tables(quick_run.read_text())[1]
    names = [row[0] for row in rows]
    for section in SECTIONS:
        assert any(name.startswith(section) for name in names), (section, names)
    for row in rows:
        assert math.isfinite(float(row[1].replace(",", ""))), row
        assert row[3], row  # a unit


def test_quick_benchmark_breaks_row_11_down_logger_by_logger(quick_run: Path) -> None:
    names = [row[0] for row in tables(quick_run.read_text())[1]]
    loggers = ["ActivationLogger", "FilterLogger", "GradCAMLogger", "AttributionLogger",
               "FilterPatternLogger", "GradientLogger", "RepresentationLogger"]  # fmt: skip
    for logger in loggers:
        found = [name for name in names if name.startswith(f"11. {logger} alone: ")]
        assert [name.split(": ")[1].split(" (")[0].split(" over")[0] for name in found] == [
            "on_train_begin CPU",
            "CPU per logged step",
            "on_train_end CPU",
            "added CPU",
        ], (logger, found)
    assert any(name.startswith("11. the loggers alone, summed") for name in names)


def test_quick_benchmark_json_matches_the_table(quick_run: Path) -> None:
    records = json.loads(quick_run.with_suffix(".json").read_text())
    rows = tables(quick_run.read_text())[1]
    assert [r["measurement"] for r in records] == [row[0] for row in rows]
    assert [r["verdict"] for r in records] == [row[5].split(" (")[0].strip("*") for row in rows]
    assert all(math.isfinite(r["value"]) for r in records)
