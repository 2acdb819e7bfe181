"""A real ``mlflow server`` for the tests: SQLite store, temporary artifacts, 127.0.0.1, free port.

Loaded as a pytest plugin from ``tests/conftest.py``. The server process is launched as soon as
collection shows that some selected test needs it, so its ~10-30 s boot overlaps the tests that run
first; the ``mlflow_server`` fixture waits until ``/health`` answers. It can be killed and started
again on the same store and port, which is how the fault tests take it away mid-training.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

__all__ = ["IMAGE_FILE", "MlflowServer", "free_port", "mlflow_server", "no_mlflow_env"]

# MLflow 3 stores log_image(key=, step=) as images/<key, / as ~>+step+<n>+timestamp+<ms>+<uuid>.png
IMAGE_FILE = re.compile(
    r"^images/(?P<key>.+)\+step\+(?P<step>\d+)\+timestamp\+\d+\+[0-9a-f-]+\.png$"
)
START_TIMEOUT = 180.0  # seconds; a cold start on two busy cores takes ~20


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """One ``mlflow server`` process group, restartable on the same store and port."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.store_uri = f"sqlite:///{root / 'mlflow.db'}"
        self.artifacts = root / "artifacts"
        self.log_path = root / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and return once ``/health`` answers; raise with its log otherwise."""
        self.launch()
        self.wait_until_healthy(timeout)

    def launch(self) -> None:
        """Start the server process without waiting for it."""
        if self.running:
            return
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job-runner process to start
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.store_uri,
            "--artifacts-destination",
            str(self.artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.root,
                start_new_session=True,  # its own process group: uvicorn is a child process
            )

    def wait_until_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Return once ``/health`` answers; raise with the server's log if it dies or times out."""
        if self._process is None:
            raise RuntimeError("the mlflow server was not launched")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with status {self._process.returncode} before "
                    f"answering:\n{self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"mlflow server did not answer within {timeout:g} s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL to its process group), as a crash would."""
        self._signal(signal.SIGKILL, wait=10)

    def stop(self) -> None:
        """Stop the server politely (SIGTERM), killing it if it takes longer than 10 s."""
        if not self._signal(signal.SIGTERM, wait=10):
            self.kill()

    def _signal(self, sig: signal.Signals, wait: float) -> bool:
        process = self._process
        if process is None:
            return True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)  # the group we created: the CLI and its uvicorn child
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return False
        deadline = time.monotonic() + wait  # the port is free once the children are gone too
        while self.healthy() and time.monotonic() < deadline:
            time.sleep(0.1)
        self._process = None
        return True

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


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
