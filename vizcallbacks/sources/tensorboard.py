"""Runs read through TensorBoard's data provider: what the plugin serves and a log directory's
report is built from. Nothing here opens a file: the provider (TensorBoard's own, or one made
over a log directory by :func:`logdir_provider`) reads the event files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vizcallbacks.sources.run import DEAD_TEXT, RunData, is_logged_by_us, params_from_markdown
from vizcallbacks.tags import PARAMS_TAG

__all__ = ["LogdirReader", "logged_runs", "read_run"]

ALL = 1 << 30  # downsample: every point the provider kept (TensorBoard's --samples_per_plugin)


def logged_runs(provider: Any, ctx: Any, experiment_id: str) -> list[str]:
    """The runs holding vizcallbacks images or scalars (not Keras' ``train``/``validation``),
    sorted by name."""
    runs: set[str] = set()
    for plugin, lister in (
        ("images", provider.list_blob_sequences),
        ("scalars", provider.list_scalars),
    ):
        listing = lister(ctx, experiment_id=experiment_id, plugin_name=plugin)
        runs.update(run for run, tags in listing.items() if any(map(is_logged_by_us, tags)))
    return sorted(runs)


def read_run(provider: Any, ctx: Any, experiment_id: str, run: str) -> RunData:
    """Run ``run``: image blob keys, scalars, the dead-channel texts and the loggers' options."""
    from tensorboard.data.provider import RunTagFilter

    only = RunTagFilter(runs=[run])
    blobs = provider.read_blob_sequences(
        ctx, experiment_id=experiment_id, plugin_name="images", downsample=ALL, run_tag_filter=only
    ).get(run, {})
    scalars = provider.read_scalars(
        ctx, experiment_id=experiment_id, plugin_name="scalars", downsample=ALL, run_tag_filter=only
    ).get(run, {})
    listed = provider.list_tensors(
        ctx, experiment_id=experiment_id, plugin_name="text", run_tag_filter=only
    ).get(run, {})  # read only the options and the dead channels, not the activation tables
    wanted = [t for t in listed if t == PARAMS_TAG or t.partition("/")[0] == DEAD_TEXT]
    texts = (
        provider.read_tensors(
            ctx,
            experiment_id=experiment_id,
            plugin_name="text",
            downsample=ALL,
            run_tag_filter=RunTagFilter(runs=[run], tags=wanted),
        ).get(run, {})
        if wanted
        else {}
    )
    data = RunData(name=run)
    for tag, sequence in blobs.items():
        if is_logged_by_us(tag):
            data.images[tag] = {d.step: d.values[2].blob_key for d in sequence if len(d.values) > 2}
    for tag, points in scalars.items():
        if is_logged_by_us(tag):
            data.scalars[tag] = [(d.step, float(d.value)) for d in points]
    for tag, points in texts.items():
        by_step = {d.step: _text(d.numpy) for d in points}
        if tag == PARAMS_TAG:
            for text in by_step.values():
                data.params.update(params_from_markdown(text))
        else:
            data.texts[tag] = by_step
    return data


def _text(value: Any) -> str:
    """A text summary's tensor (a 0-d array of bytes) as a string."""
    item = value.item() if hasattr(value, "item") else value
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)


class LogdirReader:
    """TensorBoard's own data provider over ``log_dir`` (every step kept), outside a server."""

    def __init__(self, log_dir: str | Path) -> None:
        from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider
        from tensorboard.backend.event_processing.plugin_event_multiplexer import (
            EventMultiplexer,
        )
        from tensorboard.context import RequestContext

        keep_all = {"images": 0, "scalars": 0, "text": 0}  # 0: no reservoir limit
        multiplexer = EventMultiplexer(size_guidance={"tensors": 0}, tensor_size_guidance=keep_all)
        self.log_dir = Path(log_dir).resolve()
        multiplexer.AddRunsFromDirectory(str(log_dir))
        multiplexer.Reload()
        self.provider = MultiplexerDataProvider(multiplexer, str(log_dir))
        self.ctx = RequestContext()

    def runs(self) -> list[RunData]:
        """Every run in the directory that vizcallbacks logged to; the directory itself (run
        ``.``) named after it."""
        runs = [
            read_run(self.provider, self.ctx, "", r)
            for r in logged_runs(self.provider, self.ctx, "")
        ]
        for run in runs:
            run.name = self.log_dir.name if run.name == "." else run.name
        return runs

    def blob(self, key: str) -> bytes:
        """The bytes of one image (a reference from :attr:`RunData.images`)."""
        return bytes(self.provider.read_blob(self.ctx, blob_key=key))
