"""The shape of the house: imports run one way, writers have one owner, a PNG is encoded once."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

import vizcallbacks as vc
from tests import models
from tests.events import read_events, tag_steps
from tests.mlflow_server import IMAGE_FILE
from vizcallbacks import records, tags

PACKAGE = Path(vc.__file__).parent
ROOT = PACKAGE.parent
# Rooms that must load without TensorFlow, and never reach into callbacks, compute or the root.
PURE = (
    "render",
    "views",
    "records",
    "tags",
    "writers",
    "messages",
    "arrays",
    "_version",
    "dashboard",
)


def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts): path
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _runtime_imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    """Import statements, without those under ``if TYPE_CHECKING:`` (they never run)."""
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped
    ]


def test_pure_rooms_load_no_tensorflow() -> None:
    pure = [name for name in _modules() if name.split(".")[1].split(".")[0] in PURE]
    pure = [name.removesuffix(".__init__") for name in pure]
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in pure)
        + "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]", (pure, out.stdout)
    assert "vizcallbacks.writers.mlflow" in pure and "vizcallbacks.views.activations" in pure
    assert "vizcallbacks.dashboard.plugin" in pure


def test_imports_run_one_way_and_stay_public() -> None:
    problems = []
    for name, path in _modules().items():
        room = name.split(".")[1]
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > 400:
            problems.append(f"{name}: {lines} lines")
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            targets = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
            )
            for target in targets:
                if target.startswith("keras.src"):
                    problems.append(f"{name} imports {target}")
                if room in PURE and (
                    target == "vizcallbacks"
                    or target.startswith(("vizcallbacks.callbacks", "vizcallbacks.compute"))
                ):
                    problems.append(f"{name} ({room}) imports {target}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vizcallbacks"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private and private != ["__version__"]:
                    problems.append(f"{name} imports private {private} from {node.module}")
    assert problems == []


def test_public_face_is_lazy_and_complete() -> None:
    assert set(vc.__all__) == {"__version__", *vc._HOMES}
    for name in vc.__all__:
        assert getattr(vc, name) is not None


def test_docs_tag_table_is_the_vocabulary() -> None:
    page = (ROOT / "docs" / "tags.md").read_text(encoding="utf-8")
    table = "\n".join(line for line in page.splitlines() if line.startswith("| `"))
    kinds = set(re.findall(r"`([a-z_]+)/<", table)) | set(re.findall(r"`([a-z_]+)/[a-z]", table))
    vocabulary = tags.IMAGE_KINDS | tags.SCALAR_KINDS | tags.HISTOGRAM_KINDS | tags.TEXT_KINDS
    assert kinds - {"vizcallbacks"} == set(vocabulary)
    with pytest.raises(ValueError, match="unknown tag kind"):
        tags.tag("activation", "conv1")


class _CountingTensorBoard(vc.TensorBoardWriter):
    def close(self) -> None:
        self.closes = getattr(self, "closes", 0) + 1
        super().close()


def test_shared_writers_one_owner_one_file_one_encode(
    digits, tmp_path: Path, mlflow_server, no_mlflow_env, monkeypatch
) -> None:
    from mlflow import MlflowClient

    encoded: list[int] = []
    real_encode = records.encode_png
    monkeypatch.setattr(records, "encode_png", lambda p: encoded.append(1) or real_encode(p))
    closes: dict[str, int] = defaultdict(int)

    class CountingMLflow(vc.MLflowWriter):
        def close(self) -> None:
            closes["mlflow"] += 1
            super().close()

    x, y = digits
    board = _CountingTensorBoard(tmp_path / "logs")
    mlflow_writer = CountingMLflow(
        tracking_uri=mlflow_server.uri, experiment_name="shared", spool_dir=tmp_path / "spool"
    )
    writers = [board, mlflow_writer]
    loggers = [
        vc.ActivationLogger(x[0], writers),
        vc.FilterLogger(writers),
        vc.GradCAMLogger(x[0], writers),
    ]
    model = models.compiled(models.functional())
    model.fit(x[:64], y[:64], epochs=2, batch_size=32, verbose=0, callbacks=loggers)

    assert len(list((tmp_path / "logs").glob("events.out.tfevents.*"))) == 1
    assert board.closes == 1 and closes["mlflow"] == 1
    events = read_events(tmp_path / "logs")
    images = {(t, s) for t, s in tag_steps(events) if isinstance(events[t][s], np.ndarray)}
    images = {(t, s) for t, s in images if events[t][s].dtype == np.uint8}
    assert len(encoded) == len(images)  # one encode per picture, shared by both writers

    spatial = ["conv_a", "bn_a", "relu_a", "pool_a", "conv_b"]
    expected = {(f"activations/{layer}", step) for layer in spatial for step in (0, 1, 2)}
    expected |= {(f"filters/{layer}", step) for layer in ("conv_a", "conv_b") for step in (0, 1, 2)}
    expected |= {("gradcam/conv_b", step) for step in (0, 1, 2)}
    assert expected <= images

    client = MlflowClient(mlflow_server.uri)
    [run] = client.search_runs([client.get_experiment_by_name("shared").experiment_id])
    assert run.info.status == "FINISHED"
    logged = []
    for info in client.list_artifacts(run.info.run_id, "images"):
        match = IMAGE_FILE.match(info.path)
        if match:
            logged.append((match["key"].replace("~", "/"), int(match["step"])))
    assert len(logged) == len(set(logged))  # each (key, step) once
    assert set(logged) == images
