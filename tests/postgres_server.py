"""A real PostgreSQL cluster and an ``mlflow server`` on it, as a team runs its tracking server.

Debian's ``postgresql`` package: ``initdb`` in a temporary data directory, ``pg_ctl`` listening on
127.0.0.1 at a free port (no Unix socket), trust authentication. Run as the ``postgres`` user when
the tests run as root (PostgreSQL refuses root). The ``postgres_mlflow_server`` fixture skips,
saying why, when PostgreSQL or psycopg2 is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from experiments.servers import MlflowServer, free_port

__all__ = ["PostgresCluster", "postgres_bin", "postgres_mlflow_server"]


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: p.split("/")[4])
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    """One throwaway PostgreSQL cluster on 127.0.0.1 with a database named ``mlflow``."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.uri = f"postgresql://postgres@127.0.0.1:{self.port}/mlflow"
        # SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3; MLflow's docs name psycopg2.
        self.store_uri = self.uri.replace("postgresql://", "postgresql+psycopg2://")

    def _run(self, *command: str) -> None:
        argv = [str(self.bin_dir / command[0]), *command[1:]]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = f"-h 127.0.0.1 -p {self.port} -k ''"
        log = str(self.root / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "mlflow")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def query(self, sql: str) -> list[tuple]:
        """Rows of one read-only query on the ``mlflow`` database."""
        import psycopg2

        with psycopg2.connect(self.uri) as connection, connection.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())


@pytest.fixture
def postgres_mlflow_server() -> Iterator[tuple[MlflowServer, PostgresCluster]]:
    """``mlflow server --backend-store-uri postgresql://... --serve-artifacts`` on 127.0.0.1."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2 is missing (pip install psycopg2-binary)")
    root = Path(tempfile.mkdtemp(prefix="vizcallbacks-postgres-"))
    root.chmod(0o755)
    cluster = PostgresCluster(bin_dir, root / "cluster")
    cluster.root.mkdir()
    cluster.start()
    server = MlflowServer(root / "mlflow", store_uri=cluster.store_uri)
    server.root.mkdir()
    try:
        server.start()
        yield server, cluster
    finally:
        server.stop()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
