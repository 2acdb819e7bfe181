"""The shape of the house: imports run one way, writers have one owner, a PNG is encoded once."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from itertools import pairwise
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
    "sources",
    "replay",
    "mlflow_store",
)
# Rooms a room never imports, at any depth (function-local imports included): the writers know
# nothing of the read side, the sources nothing of the writers, and MLflow's neutral room (what
# both sides share) nothing of either.
CLI = ("commands", "__main__")  # the command line: it may import every room, none imports it
NEVER = {
    "writers": ("sources", "dashboard", "compare", "replay", *CLI),
    "sources": ("writers", "dashboard", "compare", "replay", *CLI),
    "mlflow_store": ("writers", "sources", "dashboard", "compare", "replay", *CLI),
    "replay": ("sources", "dashboard", "compare", *CLI),
}


def _modules() -> dict[str, Path]:
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts): path
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _room(module: str) -> str:
    """``writers`` for ``vizcallbacks.writers.mlflow.spool``; ``__init__`` for the root."""
    parts = module.removesuffix(".__init__").split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _package_imports() -> list[tuple[str, str]]:
    """Every ``(module, imported vizcallbacks module)`` pair, at any depth in the file: inside
    functions and under ``if TYPE_CHECKING:`` too (a loop hidden there is a loop all the same)."""
    modules = {name.removesuffix(".__init__") for name in _modules()}
    pairs = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolved against the importing package
                    package = name.split(".")[: -node.level]
                    base = ".".join([*package, *([base] if base else [])])
                # ``from vizcallbacks import records`` imports the module records
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            else:
                continue
            pairs += [(name, t) for t in targets if t.partition(".")[0] == "vizcallbacks"]
    return pairs


def room_cycles(edges: dict[tuple[str, str], str]) -> list[str]:
    """Each loop among rooms in ``edges`` (``(room, imported room)`` → an import that makes it),
    as ``a -> b -> a`` followed by the imports that close it; one loop per tangle of rooms."""
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    reach = {room: reachable(room) for room in list(graph)}
    loops, done = [], set()
    for room in sorted(reach):
        if room in done or room not in reach[room]:
            continue
        tangle = {r for r in reach[room] if room in reach.get(r, set())}
        done |= tangle
        paths, queue, cycle = {room: [room]}, [room], []
        for here in queue:  # breadth first (the queue grows as it is read): the shortest loop
            for nxt in sorted(graph[here] & tangle):
                if nxt == room:
                    cycle = cycle or [*paths[here], room]
                elif nxt not in paths:
                    paths[nxt] = [*paths[here], nxt]
                    queue.append(nxt)
        why = "; ".join(edges[a, b] for a, b in pairwise(cycle))
        loops.append(f"{' -> '.join(cycle)} ({why})")
    return loops


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
    assert "vizcallbacks.dashboard.plugin" in pure and "vizcallbacks.sources.tensorboard" in pure
    assert "vizcallbacks.replay.sync" in pure and "vizcallbacks.mlflow_store.server" in pure


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


def test_rooms_import_in_no_loop_and_the_writers_never_read() -> None:
    edges: dict[tuple[str, str], str] = {}
    problems = []
    for module, target in _package_imports():
        room, other = _room(module), _room(target)
        if room != other:
            edges.setdefault((room, other), f"{module} imports {target}")
        if other in NEVER.get(room, ()):
            problems.append(f"{module} ({room}) imports {target} ({other})")
    assert ("writers", "mlflow_store") in edges and ("sources", "mlflow_store") in edges
    assert ("__init__", "dashboard") in edges  # the root hands the writers the report builder
    assert problems == []
    assert room_cycles(edges) == [], "rooms import each other in a loop:\n" + "\n".join(
        room_cycles(edges)
    )


def test_a_loop_among_rooms_is_named_with_its_imports() -> None:
    # the loop this layout removed: the writer imported the report, the report a writer module
    edges = {
        ("writers", "dashboard"): "writer imports report",
        ("dashboard", "writers"): "report imports stores",
        ("dashboard", "tags"): "model imports tags",
        ("compare", "writers"): "compare imports readback",
    }
    assert room_cycles(edges) == [
        "dashboard -> writers -> dashboard (report imports stores; writer imports report)"
    ]
    three = {("a", "b"): "a>b", ("b", "c"): "b>c", ("c", "a"): "c>a", ("c", "d"): "c>d"}
    assert room_cycles(three) == ["a -> b -> c -> a (a>b; b>c; c>a)"]
    assert room_cycles({("a", "b"): "a>b"}) == []


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
