"""The TensorBoard plugin: a "vizcallbacks" tab with the network view and the layer view.

A dynamic plugin (entry point group ``tensorboard_plugins``): its frontend is the ES module
``static/dashboard.js``, served here with its stylesheet; its data comes only through
TensorBoard's data provider (``context.data_provider``), never from files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from vizcallbacks.dashboard.network import network_index
from vizcallbacks.dashboard.report import static_text
from vizcallbacks.sources.tensorboard import logged_runs, read_run

__all__ = ["PLUGIN_NAME", "VizCallbacksLoader", "VizCallbacksPlugin"]

PLUGIN_NAME = "vizcallbacks"
_STATIC = {
    "/index.js": ("dashboard.js", "text/javascript"),
    "/dashboard.css": ("dashboard.css", "text/css"),
}


class VizCallbacksPlugin(base_plugin.TBPlugin):
    """Serves the frontend, the runs vizcallbacks logged, one run's network index, and images."""

    plugin_name = PLUGIN_NAME

    def __init__(self, context: base_plugin.TBContext) -> None:
        self._provider = context.data_provider
        self._root_name = root_run_name(context.logdir or "")

    def get_plugin_apps(self) -> dict[str, Any]:
        apps: dict[str, Any] = {path: self._static(*file) for path, file in _STATIC.items()}
        handlers = {"/runs": self._runs, "/run": self._run, "/image": self._image}
        apps |= {path: wrappers.Request.application(h) for path, h in handlers.items()}
        return apps

    def is_active(self) -> bool:
        """Listed when TensorBoard holds images or scalars (``data_plugin_names``)."""
        return False

    def data_plugin_names(self) -> tuple[str, ...]:
        return ("images", "scalars")

    def frontend_metadata(self) -> base_plugin.FrontendMetadata:
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="vizcallbacks")

    @staticmethod
    def _static(name: str, mime: str) -> Any:
        @wrappers.Request.application
        def serve(request: wrappers.Request) -> wrappers.Response:
            return http_util.Respond(request, static_text(name), mime)

        return serve

    def _runs(self, request: wrappers.Request) -> wrappers.Response:
        ctx = plugin_util.context(request.environ)
        experiment = plugin_util.experiment_id(request.environ)
        return http_util.Respond(
            request, logged_runs(self._provider, ctx, experiment), "application/json"
        )

    def _run(self, request: wrappers.Request) -> wrappers.Response:
        ctx = plugin_util.context(request.environ)
        experiment = plugin_util.experiment_id(request.environ)
        run = request.args.get("run", "")
        if run not in logged_runs(self._provider, ctx, experiment):
            return http_util.Respond(request, f"no vizcallbacks run {run!r}", "text/plain", 404)
        data = read_run(self._provider, ctx, experiment, run)
        if run == "." and self._root_name:
            data.name = self._root_name
        return http_util.Respond(request, network_index(data), "application/json")

    def _image(self, request: wrappers.Request) -> wrappers.Response:
        ctx = plugin_util.context(request.environ)
        key = request.args.get("key", "")
        try:
            data = self._provider.read_blob(ctx, blob_key=key)
        except Exception:  # a stale or forged key: the provider's own errors vary
            return http_util.Respond(request, "no such image", "text/plain", 404)
        return http_util.Respond(request, data, "image/png")


def root_run_name(logdir: str) -> str:
    """What to call TensorBoard's run ``.`` (event files directly in ``--logdir``): the log
    directory's own name, as a user calls it (``logs/fashion_cnn`` → ``fashion_cnn``); empty
    when there is none to take (``--logdir_spec``)."""
    path = logdir.rstrip("/\\")
    if not path:
        return ""
    if "://" in path:
        return path.rsplit("/", 1)[-1]
    return Path(path).expanduser().resolve().name


class VizCallbacksLoader(base_plugin.TBLoader):
    """What the ``tensorboard_plugins`` entry point names: loads the plugin."""

    def load(self, context: base_plugin.TBContext) -> VizCallbacksPlugin:
        return VizCallbacksPlugin(context)
