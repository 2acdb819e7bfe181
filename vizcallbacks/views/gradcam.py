"""What GradCAMLogger logs, as records: overlays, bare heatmaps and the predictions behind them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from vizcallbacks.records import Image, Record, Scalars, Text
from vizcallbacks.render.overlay import enlarge
from vizcallbacks.tags import tag
from vizcallbacks.views.maps import bare_picture, overlay_picture

if TYPE_CHECKING:  # views take computed values; they never run the computation
    from vizcallbacks.compute.attribution.result import Attribution

__all__ = ["gradcam_records"]


def gradcam_records(
    layer: str,
    probe: np.ndarray,
    result: Attribution,
    probe_names: Sequence[str | None],
    cmap: str,
    alpha: float,
    class_names: Sequence[str] | None = None,
) -> list[Record]:
    """Per probe: the heatmap over the image and bare, the predicted class and its probability,
    and with ``class_names`` a sentence naming the prediction and the class explained."""
    records: list[Record] = []
    for i, name in enumerate(probe_names):
        overlay = overlay_picture(probe[i], result.heatmaps[i], cmap, alpha)
        records.append(Image(tag("gradcam", layer, name), enlarge(overlay)))
        bare = enlarge(bare_picture(result.heatmaps[i], cmap))
        records.append(Image(tag("gradcam_heatmap", layer, name), bare))
        predicted, probability = int(result.predicted[i]), float(result.probability[i])
        records.append(
            Scalars(
                {
                    tag("gradcam_predicted_class", layer, name): float(predicted),
                    tag("gradcam_probability", layer, name): probability,
                }
            )
        )
        if class_names is not None:
            explained = int(result.class_index[i])
            text = (
                f"predicted **{class_names[predicted]}** (p = {probability:.3f}); heatmap "
                f"explains **{class_names[explained]}** "
                f"(p = {result.class_probability[i]:.3f})"
            )
            records.append(Text(tag("gradcam_prediction", layer, name), text))
    return records
