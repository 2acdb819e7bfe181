"""GradCAMLogger: Grad-CAM heatmaps of a fixed probe, overlaid and bare, every epoch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vizcallbacks.arrays import is_real
from vizcallbacks.callbacks.base import VisualizationCallback
from vizcallbacks.compute.cam_layouts import check_signals, model_signal_shape
from vizcallbacks.compute.gradcam import GradCAM, GradCAMResult
from vizcallbacks.compute.layers import ensure_built
from vizcallbacks.compute.probe import check_probe, check_probe_fits_model, probe_tag_names
from vizcallbacks.records import Record
from vizcallbacks.render.colormap import HEATMAP_CMAP, check_cmap
from vizcallbacks.views.gradcam import gradcam_records

__all__ = ["GradCAMLogger", "check_display", "checked_display"]


class GradCAMLogger(VisualizationCallback):
    """Log where the model looks in each probe image, once before training and every epoch.

    Images ``gradcam/<layer>[/<probe>]`` (heatmap over the probe) and
    ``gradcam_heatmap/<layer>[/<probe>]``; scalars ``gradcam_predicted_class/<layer>[/<probe>]``
    and ``gradcam_probability/<layer>[/<probe>]``; with ``class_names``, the text
    ``gradcam_prediction/<layer>[/<probe>]``.

    Args:
        probe: one image ``(H, W, C)`` or a batch ``(N, H, W, C)``, preprocessed like training data
            (``(N, C, H, W)`` for channels_first; signals ``(N, T, C)`` for a Conv1D model, drawn
            as the first channel's curve over a band of the heatmap);
            for a model with several inputs, a tuple or dict of arrays (one per input, all one
            example or all batches): the heatmap is drawn over the first image input.
        writers: where to log, e.g. ``[vc.TensorBoardWriter("logs")]``.
        layer: name, nested path or index of a layer with a 4-D output; ``None`` takes the last.
        class_index: the class to explain for every probe; ``None`` the predicted one.
        labels: the probes' true labels, one int per image, explained instead of the prediction.
        every_n_epochs: log after every n-th epoch (and after the last).
        cmap: matplotlib colormap of the heatmap.
        alpha: weight of the heatmap over the image, in [0, 1].
        class_names: a name per class, for the text summary.
        probe_names: one name per probe for the tags; indices by default.
        output: the output to explain (name or index) when the model has several.
        display: what to draw under the heatmap instead of the probe (for probes that do not
            look like pictures, e.g. caffe-preprocessed BGR): one image or a batch with the
            probe's N, H and W, uint8 or float in [0, 1] or [0, 255].
    """

    def __init__(
        self,
        probe: Any,
        writers: Any,
        layer: str | int | None = None,
        class_index: int | None = None,
        labels: Sequence[int] | np.ndarray | None = None,
        every_n_epochs: int = 1,
        cmap: str = HEATMAP_CMAP,
        alpha: float = 0.4,
        class_names: Sequence[str] | None = None,
        probe_names: Sequence[str] | None = None,
        output: str | int | None = None,
        display: Any = None,
    ) -> None:
        super().__init__(writers, every_n_epochs)
        self.probe = check_probe(probe)
        n = self.probe.shape[0]
        if output is not None and (isinstance(output, bool) or not isinstance(output, (str, int))):
            raise TypeError(f"output must be an output name or index. Received: output={output!r}")
        self.output = output
        self._display = None if display is None else checked_display(display, self.probe)
        self.display = self.probe if self._display is None else self._display
        if class_index is not None and labels is not None:
            raise ValueError(
                "Pass class_index (one class for every probe) or labels (the probes' true "
                f"classes), not both. Received: class_index={class_index!r}, labels={labels!r}"
            )
        if class_index is not None and (
            isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer))
        ):
            raise TypeError(
                "class_index must be an int (use labels= for one class per probe). "
                f"Received: class_index={class_index!r}"
            )
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape not in ((n,), (n, 1)):
                raise ValueError(
                    f"labels needs one class index per probe image: shape ({n},), not one-hot. "
                    f"Received shape {labels.shape}"
                )
            labels = labels.reshape(-1)
            if np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)):
                labels = labels.astype(np.int64)  # float labels such as 3.0 are fine
        self.layer = layer
        self.class_index = class_index
        self.labels = labels
        self.cmap = check_cmap(cmap)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be a number in [0, 1]. Received: alpha={alpha!r}")
        self.alpha = float(alpha)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.probe_names = probe_tag_names(probe_names, n)
        self._raw_probe, self._probe_names = probe, probe_names
        self._cam: GradCAM | None = None
        self._target = labels if labels is not None else class_index

    def setup(self) -> None:
        if model_signal_shape(self.model, None) is not None and self._display is None:
            self.probe = self.display = check_signals(self._raw_probe)  # (N, T, C), not an image
            self.probe_names = probe_tag_names(self._probe_names, self.probe.shape[0])
        ensure_built(self.model, self.probe.shape)
        check_probe_fits_model(self.probe, self.model)
        self._cam = GradCAM(
            self.model, self.layer, self.probe.shape[1:], self.output, example=self.probe
        )
        self._cam.class_indices(self._target, self.probe.shape[0])  # in range for this model
        known = max(self._cam.num_classes, 2)
        if self.class_names is not None and len(self.class_names) != known:
            raise ValueError(
                f"class_names needs one name per class ({known}). "
                f"Received {len(self.class_names)} names"
            )
        self._cam(self.probe, self._target)  # traced here, before training, not in epoch 1
        if (
            self._display is None
            and self._cam.channels_first
            and isinstance(self.probe, np.ndarray)
        ):
            self.display = np.moveaxis(self.probe, 1, -1)  # (N, C, H, W) drawn as (N, H, W, C)

    @property
    def layer_name(self) -> str | None:
        """The layer explained (known after training starts), ``outer/inner`` when nested."""
        return None if self._cam is None else self._cam.layer_name

    def claims(self) -> set[tuple[str, ...]]:
        assert self._cam is not None
        layer = self._cam.layer_name
        return {("gradcam", layer) + ((probe,) if probe else ()) for probe in self.probe_names}

    def compute(self) -> GradCAMResult:
        assert self._cam is not None
        return self._cam(self.probe, self._target)

    def view(self, payload: GradCAMResult, step: int) -> list[Record]:
        assert self._cam is not None
        layer = self._cam.layer_name
        self.warn_nonfinite(f"Grad-CAM of {layer}", payload.heatmaps)
        return gradcam_records(
            layer, self.display, payload, self.probe_names, self.cmap, self.alpha, self.class_names
        )


def checked_display(display: Any, probe: np.ndarray) -> np.ndarray:
    """``display`` checked against ``probe``, or else against ``probe`` read as channels_first
    ``(N, C, H, W)``."""
    try:
        return check_display(display, probe)
    except ValueError:
        if not (isinstance(probe, np.ndarray) and probe.ndim == 4):
            raise
        try:
            return check_display(display, np.moveaxis(probe, 1, -1))
        except ValueError:
            pass
        raise


def check_display(display: Any, probe: np.ndarray) -> np.ndarray:
    """``display`` as a batch matching ``probe``'s N, H and W: uint8, or float in [0, 1]."""
    array = np.asarray(display)
    if array.ndim in (2, 3) and array.shape[:2] == probe.shape[1:3]:
        array = array[None]
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[:3] != probe.shape[:3]:
        raise ValueError(
            f"display must hold one picture per probe image with the probe's height and width: "
            f"shape ({probe.shape[0]}, {probe.shape[1]}, {probe.shape[2]}, C). "
            f"Received shape {np.shape(display)}"
        )
    if array.dtype == np.uint8:
        return array
    if not is_real(array, allow_bool=False):
        raise TypeError(f"display must be uint8 or float pixels. Received dtype {array.dtype}")
    values = array.astype(np.float32)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
        raise ValueError(
            "display must be uint8 or float pixels in [0, 1] or [0, 255] (finite). Received "
            f"values in [{np.nanmin(values):.4g}, {np.nanmax(values):.4g}]"
        )
    if values.max() > 1.0:
        return np.round(values).astype(np.uint8)  # [0, 255]: drawn as is, not stretched
    return values
