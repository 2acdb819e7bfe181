"""A real ``mlflow server`` for the tests: SQLite store, temporary artifacts, 127.0.0.1, free port.

Loaded as a pytest plugin from ``tests/conftest.py``. The server process is launched as soon as
collection shows that some selected test needs it, so its ~10-30 s boot overlaps the tests that run
first; the ``mlflow_server`` fixture waits until ``/health`` answers. It can be killed and started
again on the same store and port, which is how the fault tests take it away mid-training.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from experiments.servers import MlflowServer, free_port

__all__ = ["IMAGE_FILE", "MlflowServer", "free_port", "mlflow_server", "no_mlflow_env"]

# MLflow 3 stores log_image(key=, step=) as images/<key, / as ~>+step+<n>+timestamp+<ms>+<uuid>.png
IMAGE_FILE = re.compile(
    r"^images/(?P<key>.+)\+step\+(?P<step>\d+)\+timestamp\+\d+\+[0-9a-f-]+\.png$"
)


_booting: list[MlflowServer] = []  # launched at collection time, stopped at session end


def _launch() -> MlflowServer:
    server = MlflowServer(Path(tempfile.mkdtemp(prefix="vizcallbacks-mlflow-server-")))
    server.launch()
    _booting.append(server)
    return server


def pytest_collection_finish(session: pytest.Session) -> None:
    """Launch the server now if a selected test needs it: it boots while earlier tests run."""
    if any("mlflow_server" in getattr(item, "fixturenames", ()) for item in session.items):
        _launch()


def pytest_sessionfinish(session: pytest.Session) -> None:
    while _booting:
        server = _booting.pop()
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server() -> MlflowServer:
    """A running server shared by the session; a test that stops it must start it again."""
    server = _booting[0] if _booting else _launch()
    server.launch()  # a no-op while it runs; restarts it if a failed test left it stopped
    server.wait_until_healthy()
    return server


@pytest.fixture
def no_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's defaults, not the caller's shell: no tracking URI or experiment from the env."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
