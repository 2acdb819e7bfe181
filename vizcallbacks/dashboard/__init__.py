"""The dashboard: a TensorBoard plugin and a one-file HTML report with the network view (one
probe down every logged layer) and the layer view (one layer across every logged step).

``model`` is pure; ``tensorboard_source`` and ``mlflow_source`` read runs back; ``plugin`` serves
them in TensorBoard; ``report`` inlines them into one HTML file. Importing this loads no
TensorFlow.
"""

from __future__ import annotations

from vizcallbacks.dashboard.model import RunData, network_index
from vizcallbacks.dashboard.report import REPORT_ARTIFACT, build_report, report_html

__all__ = ["REPORT_ARTIFACT", "RunData", "build_report", "network_index", "report_html"]
