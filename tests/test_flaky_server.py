"""A slow or flaky tracking server: a fault-injecting proxy (``tests/fault_proxy.py``) in front
of a real ``mlflow server`` answers every request 2 s late, or fails 20 % of them with HTTP
500/503 or a reset connection, half of those after the server did the work. Training goes on at
its own pace, every (key, step) arrives exactly once, and the closing line says how long
delivery took.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import keras
import pytest
from mlflow import MlflowClient

from tests.fault_proxy import FaultProxy
from tests.mlflow_server import MlflowServer
from tests.test_mlflow_writer import assert_every_step_once, fit, only_run
from vizcallbacks.writers.mlflow import MLflowWriter

pytestmark = pytest.mark.usefixtures("no_mlflow_env")
EPOCHS = 3


class EpochClock(keras.callbacks.Callback):
    """Seconds from the first epoch's start to the last epoch's end (the loggers' train begin,
    which creates the run, and train end, which waits for delivery, left out)."""

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if epoch == 0:
            self.began = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.trained = time.perf_counter() - self.began


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize(
    ("latency", "failure_rate"), [(2.0, 0.0), (0.0, 0.2)], ids=["slow", "flaky"]
)
def test_a_slow_or_flaky_server_gets_every_step_exactly_once(
    mlflow_server: MlflowServer,
    digits: Any,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    latency: float,
    failure_rate: float,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # ours retry the rest
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    caplog.set_level(logging.INFO, "vizcallbacks")  # the closing line, printed or logged
    experiment = f"flaky-{latency}-{failure_rate}"
    with FaultProxy(mlflow_server.uri, latency, failure_rate, seed=3) as proxy:
        writer = MLflowWriter(
            proxy.uri, experiment_name=experiment, spool_dir=tmp_path, close_timeout=1200,
            retry_interval=2,
        )  # fmt: skip
        clock = EpochClock()
        started = time.perf_counter()
        fit(digits, writer, EPOCHS, before=[clock])
        returned = time.perf_counter() - started
    said = [*capsys.readouterr().out.splitlines(), *(r.getMessage() for r in caplog.records)]
    closing = [line for line in said if line.startswith("vizcallbacks: MLflow run")]
    print(  # the numbers for the performance page (pytest -s shows them)
        f"\n{experiment}: epochs {clock.trained:.1f} s, fit returned after {returned:.1f} s; "
        f"proxy {dict(proxy.counts)}; {closing}"
    )
    client = MlflowClient(mlflow_server.uri)  # read back past the proxy
    run = only_run(client, experiment)
    assert run.info.status == "FINISHED"
    assert_every_step_once(client, run.info.run_id, EPOCHS)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing left to sync
    assert len(closing) == 1 and re.search(r"all delivered \d+\.\d s after training", closing[0])
    if failure_rate:
        assert sum(n for k, n in proxy.counts.items() if k != "requests") >= 5, proxy.counts
