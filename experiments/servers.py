"""A real ``mlflow server`` process on 127.0.0.1: SQLite (or a given) store, proxied artifacts in a
temporary directory, free port.

Used by the test suite (``tests/mlflow_server.py``) and by ``experiments.gallery`` for its
screenshots. It can be killed and started again on the same store and port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["START_TIMEOUT", "MlflowServer", "free_port"]

START_TIMEOUT = 180.0  # seconds; a cold start on two busy cores takes ~20


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MlflowServer:
    """One ``mlflow server`` process group, restartable on the same store and port."""

    def __init__(self, root: Path, port: int | None = None, store_uri: str | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.store_uri = store_uri or f"sqlite:///{root / 'mlflow.db'}"
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
            "--serve-artifacts",
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
