"""What AttributionLogger logs, as records: per method an overlay and a bare heatmap per probe,
one picture of every method side by side, and the sanity scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from vizcallbacks.records import Image, Record, Scalars
from vizcallbacks.render.compare import labelled_columns
from vizcallbacks.render.faithfulness import CurvePanel, faithfulness_curves_image
from vizcallbacks.render.overlay import enlarge
from vizcallbacks.tags import tag
from vizcallbacks.views.maps import bare_picture, overlay_picture, sample_picture

if TYPE_CHECKING:  # views take computed values; they never run the computation
    from vizcallbacks.compute.attribution.faithfulness import MethodFaithfulness
    from vizcallbacks.compute.attribution.result import Attribution

__all__ = ["METHOD_LABELS", "SIDE_BY_SIDE", "attribution_records", "faithfulness_records"]

# Column headers of the side-by-side picture.
METHOD_LABELS = {
    "saliency": "saliency",
    "smoothgrad": "SmoothGrad",
    "gradients_x_inputs": "grad x input",
    "integrated_gradients": "integr. grads",
    "occlusion": "occlusion",
    "grad_cam": "Grad-CAM",
    "grad_cam_plus_plus": "Grad-CAM++",
    "layer_cam": "LayerCAM",
    "score_cam": "Score-CAM",
    "faster_score_cam": "Faster S-CAM",
}
SIDE_BY_SIDE = "all_probes"  # the layer segment of the side-by-side picture's tag


def attribution_records(
    display: np.ndarray,
    results: Mapping[str, Attribution],
    probe_names: Sequence[str | None],
    cmap: str,
    alpha: float,
    class_names: Sequence[str] | None = None,
    sanity: Mapping[str, float] | None = None,
    individual: bool = True,
) -> list[Record]:
    """Images ``attribution/<method>[/<probe>]`` (over ``display``) and
    ``attribution_heatmap/<method>[/<probe>]`` (unless not ``individual``), the side-by-side
    ``attribution_methods/all_probes`` (a row per probe: the image, then each method's overlay)
    and ``attribution_sanity/<method>``."""
    records: list[Record] = []
    overlays: dict[str, list[np.ndarray]] = {}
    for method, result in results.items():
        overlays[method] = []
        for i, name in enumerate(probe_names):
            overlay = overlay_picture(display[i], result.heatmaps[i], cmap, alpha)
            overlays[method].append(overlay)
            if not individual:
                continue
            records.append(Image(tag("attribution", method, name), enlarge(overlay)))
            bare = enlarge(bare_picture(result.heatmaps[i], cmap))
            records.append(Image(tag("attribution_heatmap", method, name), bare))
    first = next(iter(results.values()))
    spatial = first.heatmaps.ndim - 1
    cells = np.stack(
        [
            np.stack([sample_picture(display[i], spatial)] + [overlays[m][i] for m in results])
            for i in range(len(probe_names))
        ]
    )
    labels = ["probe"] + [METHOD_LABELS.get(m, m) for m in results]
    rows = [
        _class_caption(first, i, class_names)
        if name is None
        else f"{name}\n{_class_caption(first, i, class_names)}"
        for i, name in enumerate(probe_names)
    ]
    table = labelled_columns(cells, labels, rows)
    records.append(Image(tag("attribution_methods", SIDE_BY_SIDE), table))
    if sanity:
        records.append(Scalars({tag("attribution_sanity", m): v for m, v in sanity.items()}))
    return records


_PANEL_TITLES = {
    "deletion": "deletion (lower AUC is better)",
    "insertion": "insertion (higher AUC is better)",
}


def faithfulness_records(found: MethodFaithfulness) -> list[Record]:
    """Scalars ``attribution_<metric>_auc/<method>`` (deletion, insertion) and
    ``attribution_mu_fidelity/<method>``, each the mean over the probes, random maps as the
    method ``random``; the picture ``attribution_curves/all_probes`` of the mean curves."""
    values: dict[str, float] = {}
    panels = []
    for metric, curves in found.curves.items():
        auc = {label: float(np.mean(curve.auc)) for label, curve in curves.items()}
        values |= {tag(f"attribution_{metric}_auc", label): v for label, v in auc.items()}
        mean_curves = {
            METHOD_LABELS.get(label, label): curve.probabilities.mean(axis=0)
            for label, curve in curves.items()
        }
        shown = {METHOD_LABELS.get(label, label): v for label, v in auc.items()}
        fractions = next(iter(curves.values())).fractions
        panels.append(CurvePanel(_PANEL_TITLES[metric], fractions, mean_curves, shown))
    for label, scores in found.mu_fidelity.items():
        values[tag("attribution_mu_fidelity", label)] = float(np.mean(scores))
    records: list[Record] = [Scalars(values)] if values else []
    if panels:
        picture = faithfulness_curves_image(panels)
        records.append(Image(tag("attribution_curves", SIDE_BY_SIDE), picture))
    return records


def _class_caption(result: Attribution, i: int, class_names: Sequence[str] | None) -> str:
    """``shirt p=0.91``: the class the maps explain and its probability."""
    explained = int(result.class_index[i])
    name = class_names[explained] if class_names is not None else f"class {explained}"
    return f"{name} p={float(result.class_probability[i]):.2f}"
