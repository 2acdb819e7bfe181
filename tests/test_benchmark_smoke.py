"""The benchmark in its smoke configuration (``--quick``), so that it never rots.

Only the shape of the result is checked (every row present, every number finite): timings on a
shared CI machine say nothing, so there are no wall-clock assertions.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The start of each row the table of every measurement must hold, in order: the five
# measurements of issue 7, then Grad-CAM and filter-pattern costs (issue 5).
EXPECTED_ROWS = [
    "1. epoch without callbacks",
    "1. epoch with ActivationLogger + FilterLogger",
    "1. overhead per epoch (median of paired ratios)",
    "1. overhead per epoch (median of paired differences)",
    "1. noise: spread of the plain epochs",
    "1. bound from the loggers' own work per epoch",
    "2. ActivationLogger.on_epoch_end blocking",
    "2. ActivationLogger compute",
    "2. ActivationLogger publish",
    "2. FilterLogger.on_epoch_end blocking",
    "2. FilterLogger compute",
    "2. FilterLogger publish",
    "2. on_epoch_end blocking per epoch, both loggers",
    "2. stage: forward pass",
    "2. stage: statistics",
    "2. stage: rendering",
    "2. stage: PNG encoding for TensorBoard",
    "2. stage: PNG encoding for MLflow",
    "2. stage: writing to TensorBoard",
    "2. stage: writing to the MLflow spool",
    "2. stage: MLflow delivery",
    "3. tutorial way per logged epoch",
    "3. vizcallbacks per logged epoch",
    "3. speed-up, whole work",
    "3. speed-up, time training waits",
    "4. RSS growth over",
    "4. largest RSS growth",
    "4. RSS growth over 4 epochs without callbacks",
    "5. VGG16 32x32, one logged step (13 conv grids, stats, first filters): on_epoch_end",
    "5. VGG16 32x32, one logged step (13 conv grids, stats, first filters): rendered",
    "5. VGG16 32x32, one logged step (13 conv grids, stats, first filters): until MLflow",
    "5. VGG16 32x32 block4_conv3 (512 channels, all drawn), one step: rendered and written",
    "5. VGG16 32x32 block4_conv3 one step: until MLflow",
    "5. VGG16 32x32 vc.grad_cam() called once",
    "5. VGG16 32x32 Grad-CAM, reused GradCAM",
    "5. VGG16 32x32 GradCAMLogger, one logged step: on_epoch_end blocking",
    "5. VGG16 32x32 GradCAMLogger, one logged step: rendered and written",
    "5. VGG16 32x32 FilterPatternLogger block3_conv3",
    "5. VGG16 32x32 filter patterns block3_conv3: per filter and ascent step",
    "6. fashion_cnn GradCAMLogger (2 probe images): on_epoch_end blocking",
    "6. fashion_cnn GradCAMLogger (2 probe images): rendered and written",
    "6. fashion_cnn FilterPatternLogger (both convs, 2 filters x 2 steps): on_epoch_end",
    "6. fashion_cnn FilterPatternLogger (both convs, 2 filters x 2 steps): rendered",
]


HEADER = "| measurement | value | unit | target | holds |"
VERDICTS = ("yes", "**no**", "inconclusive (noise)")
TARGETS = ["1. overhead", "2. on_epoch_end blocking", "3. speed-up", "4. RSS growth", "5. VGG16"]


def tables(markdown: str) -> list[list[list[str]]]:
    """Each markdown table of the report: its body rows as lists of stripped cells."""
    found: list[list[list[str]]] = []
    for line in markdown.splitlines():
        if line.startswith(HEADER):
            found.append([])
        elif line.startswith("| ") and found:
            found[-1].append([cell.strip() for cell in line.strip("|").split("|")])
    return found  # the |---| separator line does not start with "| "


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of the table of every measurement (the report's second table)."""
    found = tables(markdown)
    assert len(found) == 2, markdown
    return found[1]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run ``python -m benchmarks.overhead --quick`` once; the path of its markdown table."""
    tmp = tmp_path_factory.mktemp("benchmark")
    out = tmp / "results.md"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env = {k: v for k, v in env.items() if not k.startswith("MLFLOW_")}
    command = [sys.executable, "-m", "benchmarks.overhead", "--quick", "--out", str(out)]
    command += ["--workdir", str(tmp / "work")]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_quick_benchmark_table_has_every_row_with_finite_numbers(quick_run: Path) -> None:
    rows = table_rows(quick_run.read_text())
    names = [row[0] for row in rows]
    assert len(rows) == len(EXPECTED_ROWS), names
    for expected, name in zip(EXPECTED_ROWS, names, strict=True):
        assert name.startswith(expected), (expected, name)
    for row in rows:
        assert len(row) == 5, row
        assert math.isfinite(float(row[1])), row
        assert row[2], row  # a unit
        if row[3]:  # a target: the verdict is stated
            assert row[4] in VERDICTS, row


def test_quick_benchmark_targets_table_states_each_target_and_verdict(quick_run: Path) -> None:
    targets = tables(quick_run.read_text())[0]
    assert len(targets) == len(TARGETS), targets
    for prefix, row in zip(TARGETS, targets, strict=True):
        assert row[0].startswith(prefix), (prefix, row)
        assert row[3] and row[4] in VERDICTS, row


def test_quick_benchmark_json_matches_the_table(quick_run: Path) -> None:
    records = json.loads(quick_run.with_suffix(".json").read_text())
    rows = table_rows(quick_run.read_text())
    assert [r["measurement"] for r in records] == [row[0] for row in rows]
    assert all(math.isfinite(r["value"]) for r in records)
