"""GradCAMLogger: Grad-CAM heatmaps of a fixed probe, overlaid and bare, every epoch; the
attribution logger's machinery with one method and Grad-CAM's own tags."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vizcallbacks.callbacks.attribution import AttributionLogger, AttributionStep
from vizcallbacks.compute.attribution.scores import ClassIndex
from vizcallbacks.records import Record
from vizcallbacks.render.colormap import HEATMAP_CMAP
from vizcallbacks.views.gradcam import gradcam_records

__all__ = ["GradCAMLogger"]


class GradCAMLogger(AttributionLogger):
    """Log where the model looks in each probe, once before training and every epoch.

    Images ``gradcam/<layer>[/<probe>]`` (heatmap over the probe) and
    ``gradcam_heatmap/<layer>[/<probe>]``; scalars ``gradcam_predicted_class/<layer>[/<probe>]``
    and ``gradcam_probability/<layer>[/<probe>]``; with ``class_names``, the text
    ``gradcam_prediction/<layer>[/<probe>]``.

    Args:
        probe: one sample or a batch, preprocessed like training data, the model's input rank
            telling which: images ``(H, W, C)`` (``(C, H, W)`` for channels_first), signals
            ``(T, C)`` (drawn as the first channel's curve over a band of the heatmap), volumes
            or videos ``(D, H, W, C)`` (drawn slice by slice); for a model with several inputs,
            a tuple or dict of arrays (one per input, all one example or all batches): the
            heatmap is drawn over the first input with a spatial axis.
        writers: where to log, e.g. ``[vc.TensorBoardWriter("logs")]``.
        layer: name, nested path or index of a layer with the input's layout; ``None`` takes
            the last.
        class_index: the class to explain for every probe; ``None`` the predicted one.
        labels: the probes' true labels, one int per probe, explained instead of the prediction.
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
        super().__init__(
            probe,
            writers,
            methods=("grad_cam",),
            class_index=class_index,
            class_names=class_names,
            every_n_epochs=every_n_epochs,
            layer=layer,
            cmap=cmap,
            alpha=alpha,
            probe_names=probe_names,
            output=output,
            display=display,
        )
        self.labels = None if labels is None else np.asarray(labels)

    def explained_classes(self, n: int) -> ClassIndex:
        """``labels`` (one class per probe) when given, else ``class_index``."""
        if self.labels is None:
            return self.class_index
        if self.labels.shape not in ((n,), (n, 1)):
            raise ValueError(
                f"labels needs one class index per probe: shape ({n},), not one-hot. "
                f"Received shape {self.labels.shape}"
            )
        labels = self.labels.reshape(-1)
        if np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)  # float labels such as 3.0 are fine
        return labels

    @property
    def _cam(self) -> Any:
        """The Grad-CAM explainer, built in setup."""
        return self._methods.get("grad_cam")

    @property
    def layer_name(self) -> str | None:
        """The layer explained (known after training starts), ``outer/inner`` when nested."""
        return None if self._cam is None else str(self._cam.layer_name)

    def claims(self) -> set[tuple[str, ...]]:
        layer = self._cam.layer_name
        return {("gradcam", layer) + ((probe,) if probe else ()) for probe in self.probe_names}

    def view(self, payload: AttributionStep, step: int) -> list[Record]:
        layer = self._cam.layer_name
        result = payload.results["grad_cam"]
        self.warn_nonfinite(f"Grad-CAM of {layer}", result.heatmaps)
        return gradcam_records(
            layer, self.display, result, self.probe_names, self.cmap, self.alpha, self.class_names
        )
