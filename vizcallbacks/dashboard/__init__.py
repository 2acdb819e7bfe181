"""The dashboard: a TensorBoard plugin and a one-file HTML report with the network view (one
probe down every logged layer) and the layer view (one layer across every logged step).

``network`` is pure; ``plugin`` serves the runs :mod:`vizcallbacks.sources` reads back in
TensorBoard; ``report`` inlines them into one HTML file. Importing this loads no TensorFlow.
"""

from __future__ import annotations

from vizcallbacks.dashboard.network import network_index
from vizcallbacks.dashboard.report import REPORT_ARTIFACT, build_report, report_html

__all__ = ["REPORT_ARTIFACT", "build_report", "network_index", "report_html"]
