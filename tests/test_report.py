"""The report of a log directory written the way earlier versions wrote it (``tf.summary``, the
same tags): layers in the logged order, every image inlined, statistics and dead channels read."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_dashboard_model import report_data
from vizcallbacks.__main__ import main as cli
from vizcallbacks.writers.tensorboard import params_markdown


def test_report_of_a_tf_summary_log(tmp_path: Path) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    pictures = {
        (layer, step): rng.integers(0, 255, (12, 18, 3), dtype=np.uint8)
        for layer in ("conv2", "conv1")
        for step in (0, 1)
    }
    writer = tf.summary.create_file_writer(str(tmp_path / "logs"))
    with writer.as_default():
        params = params_markdown({"layers_logged": ["conv2", "conv1"], "max_channels": 64})
        tf.summary.text("vizcallbacks/params", params, step=0)
        for (layer, step), picture in sorted(pictures.items()):  # conv1 first on disk
            tf.summary.image(f"activations/{layer}", picture[None], step=step)
            tf.summary.scalar(f"activation_mean/{layer}", 0.5 + step, step=step)
        tf.summary.text("dead_channel_indices/conv1", "2 of the channels are zero: 0, 3", step=1)
        tf.summary.scalar("epoch_loss", 1.0, step=0)  # not ours: left out
    writer.close()

    output = tmp_path / "report.html"
    assert cli(["report", str(tmp_path / "logs"), "-o", str(output)]) == 0
    data = report_data(output.read_text("utf-8"))
    (run,) = data["runs"]
    assert [layer["name"] for layer in run["layers"]] == ["conv2", "conv1"]  # the logged order
    assert run["order"] == "logged" and run["steps"] == [0, 1]
    for layer in run["layers"]:
        (series,) = layer["images"]
        assert series["steps"] == [0, 1]
        for step, ref in zip(series["steps"], series["values"], strict=True):
            png = base64.b64decode(data["images"][ref].split(",", 1)[1])
            shown = np.asarray(Image.open(io.BytesIO(png)))
            np.testing.assert_array_equal(shown, pictures[layer["name"], step])
        (mean,) = layer["stats"]
        assert mean["kind"] == "activation_mean" and mean["values"] == [0.5, 1.5]
    assert run["layers"][1]["dead"] == {
        "steps": [1],
        "values": ["2 of the channels are zero: 0, 3"],
    }
    assert "epoch_loss" not in output.read_text("utf-8")


def test_report_refuses_a_directory_with_nothing_logged(tmp_path: Path) -> None:
    assert cli(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    assert not (tmp_path / "r.html").exists()


def test_the_writers_reach_the_report_through_the_seam_the_package_fills(caplog) -> None:
    # MLflowWriter(report=True) calls log_run_report; the package root installed the dashboard's
    # builder there, which tries the server (nothing listens on port 9) and says so, once.
    from vizcallbacks.writers.run_report import install_run_report, log_run_report

    with caplog.at_level("WARNING", logger="vizcallbacks"):
        log_run_report("http://127.0.0.1:9", "0123abcd")
    assert "the HTML report of run 0123abcd was not written" in caplog.text
    assert "does not answer" in caplog.text
    with pytest.raises(TypeError, match="Received: 'report'"):
        install_run_report("report")  # type: ignore[arg-type]
