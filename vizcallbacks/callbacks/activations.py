"""ActivationLogger: feature-map grids, mean maps and activation statistics every epoch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from vizcallbacks._version import __version__
from vizcallbacks.arrays import check_positive_int
from vizcallbacks.callbacks.background import warn_once
from vizcallbacks.callbacks.base import VisualizationCallback
from vizcallbacks.compute.forward import ActivationExtractor
from vizcallbacks.compute.layers import LayerSelection, network_layers, select_layers
from vizcallbacks.compute.probe import (
    given_probe,
    probe_tag_names,
    provisional_probe,
    read_probe,
)
from vizcallbacks.compute.statistics import activation_statistics
from vizcallbacks.records import Params, Record
from vizcallbacks.render.colormap import DEFAULT_CMAP, check_cmap
from vizcallbacks.render.tiling import MAX_GRID_SIZE
from vizcallbacks.views.activations import (
    ActivationView,
    class_comparison_records,
    drawable,
    probe_records,
)

__all__ = ["ActivationLogger", "channels_first_layers"]


class ActivationLogger(VisualizationCallback):
    """Log what each layer makes of a fixed probe, once before training and after every epoch.

    Per layer with a 4-D output: ``activations/<layer>`` (the first ``max_channels`` channels
    tiled) and ``mean_activation/<layer>``; a 3-D output ``(N, T, C)`` (Conv1D) is drawn as a
    channels x time heatmap, a 5-D one (Conv3D) as a channel x depth-slice montage. Per layer,
    Dense included: ``activation_mean``, ``activation_std``, ``activation_zero_fraction``,
    ``dead_channels`` scalars and a ``channel_means`` histogram. ``channels_first`` outputs are
    turned channels-last first, so every picture and statistic reads the channel axis right.

    Args:
        probe: one image ``(H, W, C)`` or volume ``(D, H, W, C)``, or a batch of images,
            signals ``(N, T, C)`` or volumes (``channels_first`` models: their own layout),
            preprocessed like the training data; the model's input rank tells which.
        writers: where to log, e.g. ``[vc.TensorBoardWriter("logs")]``.
        layers: layer names, nested paths or indices; ``None`` takes every layer. A custom
            block (a layer holding layers) or nested model is logged after its layers, under
            its own path (``encoder/block_1`` beside ``encoder/block_1/mha``).
        every_n_epochs: log after every n-th epoch (and after the last).
        max_channels: channels drawn per grid.
        cmap: matplotlib colormap name.
        probe_names: one name per probe for the image tags; indices by default.
        compare_channel: with several probes (say two classes), also log
            ``class_comparison/channel_<k>``: a row per probe, a column per layer, channel k.
        max_grid_size: grids whose long side would pass this many pixels are drawn from maps
            shrunk by an integer factor (block means); ``None`` keeps full size.
        table: ``(layer, channel)``: also log that channel's raw values for the first probe as a
            table, ``activation_table/<layer>`` (markdown text, and an HTML page per step in the
            files: an MLflow artifact), positive cells highlighted.
    """

    compiles_in_background = True

    def __init__(
        self,
        probe: Any,
        writers: Any,
        layers: LayerSelection = None,
        every_n_epochs: int = 1,
        max_channels: int = 64,
        cmap: str = DEFAULT_CMAP,
        probe_names: Sequence[str] | None = None,
        compare_channel: int | None = None,
        table: tuple[str, int] | None = None,
        max_grid_size: int | None = MAX_GRID_SIZE,
    ) -> None:
        super().__init__(writers, every_n_epochs)
        self._given = given_probe(probe)
        self.layers = layers
        self.max_channels = check_positive_int("max_channels", max_channels)
        self.max_grid_size = (
            None if max_grid_size is None else check_positive_int("max_grid_size", max_grid_size)
        )
        self.cmap = check_cmap(cmap)
        self._names_asked = probe_names
        self.compare_channel = compare_channel
        # Images unless the model says otherwise: setup knows the input rank and looks again.
        self._set_probe(provisional_probe(self._given))
        self.table = table
        self._extractor: ActivationExtractor | None = None
        self._channels_first: set[str] = set()  # layers whose outputs are (N, C, ...)
        self._probe_first = False  # the model reads (N, C, ...) inputs: the probe is drawn moved
        self._view = self._new_view()

    def _set_probe(self, probe: np.ndarray) -> None:
        """Take ``probe`` (batch axis first) and check what depends on the number of probes."""
        self.probe = probe
        n = probe.shape[0]
        self.probe_names = probe_tag_names(self._names_asked, n)
        compare_channel = self.compare_channel
        if compare_channel is not None and (
            n < 2
            or isinstance(compare_channel, bool)
            or not isinstance(compare_channel, int)
            or compare_channel < 0
        ):
            raise ValueError(
                "compare_channel needs an int ≥ 0 and at least two probe images (one per class "
                f"to compare). Received compare_channel={compare_channel!r} with {n} probe(s)"
            )

    def setup(self) -> None:
        self._set_probe(read_probe(self._given, self.model))  # one sample or a batch
        refs = select_layers(self.model, self.layers, blocks=True)
        self._channels_first = channels_first_layers(self.model, {id(r.layer) for r in refs})
        self._probe_first = _input_format(self.model) == "channels_first"
        self._extractor = ActivationExtractor(self.model, refs)
        trial = self.compute()  # fails here, before training, rather than later
        self.reuse_at_step_zero(trial)
        self._check_table(trial)
        drawn = sum(drawable(values) for values in trial.values())
        self._view = self._new_view(drawn)
        if not drawn:
            found = sorted({type(ref.layer).__name__ for ref in refs})
            raise ValueError(
                "ActivationLogger found no layer with a 4-D (N, H, W, C), 3-D (N, T, C) or 5-D "
                "(N, D, H, W, C) output to draw among the layers asked for; found: "
                f"{', '.join(found)}. Pass layers= naming conv, pooling or activation layers, "
                "or leave it out."
            )

    def _check_table(self, trial: dict[str, np.ndarray]) -> None:
        if self.table is None:
            return
        layer, channel = self.table
        names = [name for name, v in trial.items() if v.ndim == 4]
        if layer not in names or not 0 <= channel < trial[layer].shape[-1]:
            raise ValueError(
                f"table=({layer!r}, {channel!r}) must name a logged layer with a 4-D output and a "
                f"channel index below its channel count. Layers: {', '.join(names)}"
            )

    def claims(self) -> set[tuple[str, ...]]:
        assert self._extractor is not None
        keys = {
            _key("activations", ref.name, probe)
            for ref in self._extractor.refs
            for probe in self.probe_names
        }
        if self.compare_channel is not None:
            keys.add(("class_comparison", f"channel_{self.compare_channel}"))
        return keys

    def shared_claims(self) -> set[tuple[str, ...]]:
        return {("vizcallbacks", "params"), *(_key("probe", "input", p) for p in self.probe_names)}

    def opening_view(self, won: set[tuple[str, ...]]) -> list[Record]:
        """The options (once per writer) and the probe images, unless another logger has them."""
        records: list[Record] = (
            [Params(self.run_params())] if ("vizcallbacks", "params") in won else []
        )
        probes = probe_records(self._probe_last(), self.probe_names)
        return records + [
            image
            for image, name in zip(probes, self.probe_names, strict=True)
            if _key("probe", "input", name) in won
        ]

    def run_params(self) -> dict[str, Any]:
        """What this logger was asked to draw, logged once per run."""
        assert self._extractor is not None
        return {
            "vizcallbacks_version": __version__,
            "layers_logged": [ref.name for ref in self._extractor.refs],
            "probes_logged": list(self.probe_names),
            "probe_shape": list(self.probe.shape),
            "every_n_epochs": self.every_n_epochs,
            "max_channels": self.max_channels,
            "max_grid_size": self.max_grid_size,  # larger grids are drawn from shrunk maps
            "cmap": self.cmap,
        }

    def compute(self) -> dict[str, np.ndarray]:
        """Every logged layer's output for the probe, channels last (``channels_first`` moved)."""
        assert self._extractor is not None
        outputs = self._extractor(self.probe)
        return {
            name: np.moveaxis(values, 1, -1)
            if name in self._channels_first and values.ndim >= 3
            else values
            for name, values in outputs.items()
        }

    def warm_up(self) -> None:
        assert self._extractor is not None
        self._extractor(self.probe)

    def _new_view(self, drawn_layers: int = 1) -> ActivationView:
        return ActivationView(
            self.probe_names,
            self.max_channels,
            self.cmap,
            self.max_grid_size,
            self.table,
            drawn_layers,
        )

    def view(self, payload: dict[str, np.ndarray], step: int) -> list[Record]:
        records: list[Record] = []
        for layer, values in payload.items():
            self.warn_nonfinite(f"activations of {layer}", values)
            layer_records, dead = self._view.layer_records(
                layer, values, activation_statistics(values), step
            )
            self.warn_dead(layer, dead, step)
            records += layer_records
        if self.compare_channel is not None:
            records += class_comparison_records(
                self._probe_last(), payload, self.compare_channel, self.cmap
            )
        return records

    def _probe_last(self) -> np.ndarray:
        """The probe channels-last, as the pictures show it."""
        return np.moveaxis(self.probe, 1, -1) if self._probe_first else self.probe

    def summary_view(self) -> list[Record]:
        """Per layer, a strip with a row per logged step (first probe) and an animated GIF."""
        return self._view.evolution.records()

    def warn_dead(self, layer: str, fraction: float, step: int) -> None:
        """Warn once per layer when most of its channels stayed dead (zero for every probe at
        every logged step since training began, two steps at least; see DeadChannelTracker)."""
        if fraction > 0.5:
            warn_once(
                self,
                f"dead {layer}",
                "vizcallbacks: %.0f%% of %s's channels are dead (zero for every probe at every "
                "logged step since training began, up to step %d); a lower learning rate or "
                "another initialization may help.",
                100 * fraction,
                layer,
                step,
            )


def _key(*parts: str | None) -> tuple[str, ...]:
    return tuple(part for part in parts if part is not None)


def _layer_format(layer: keras.layers.Layer) -> str | None:
    """The layer's own data format: its ``data_format``, or a BatchNormalization's axis."""
    fmt = getattr(layer, "data_format", None)
    if fmt in ("channels_first", "channels_last"):
        return str(fmt)
    if isinstance(layer, keras.layers.BatchNormalization):
        return "channels_first" if layer.axis == 1 else "channels_last"
    return None


def channels_first_layers(model: keras.Model, wanted: set[int]) -> set[str]:
    """Names of the ``wanted`` layers (by id) whose outputs put channels first.

    A layer with a ``data_format`` (conv, pooling, upsampling...) or a BatchNormalization axis
    says so itself; one without (ReLU, Add, Dropout) follows the last layer before it in
    forward order that did, and the first ones follow ``keras.config.image_data_format()``.
    """
    found: set[str] = set()
    current = keras.config.image_data_format()
    for ref in network_layers(model):  # a block follows its last layer
        current = _layer_format(ref.layer) or current
        if id(ref.layer) in wanted and current == "channels_first":
            found.add(ref.name)
    return found


def _input_format(model: keras.Model) -> str:
    """The data format the model's inputs are in: that of its first layer that names one."""
    for ref in network_layers(model):
        if (fmt := _layer_format(ref.layer)) is not None:
            return fmt
    return keras.config.image_data_format()
