"""AttributionLogger: every attribution method's map of a fixed probe, side by side, every epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vizcallbacks.callbacks.base import VisualizationCallback
from vizcallbacks.callbacks.display import checked_display
from vizcallbacks.compute.attribution.faithfulness import (
    FAITHFULNESS_METRICS,
    MethodFaithfulness,
    faithfulness_of,
)
from vizcallbacks.compute.attribution.methods import (
    ALL_METHODS,
    Method,
    build_method,
    method_options,
)
from vizcallbacks.compute.attribution.perturbed import PerturbedScores, scorer
from vizcallbacks.compute.attribution.result import Attribution
from vizcallbacks.compute.attribution.sanity import reinitialized, spearman, top_layer
from vizcallbacks.compute.attribution.scores import ClassIndex, ClassScores
from vizcallbacks.compute.forward import model_inputs, record_forward
from vizcallbacks.compute.layers import LayerRef
from vizcallbacks.compute.probe import (
    given_probe,
    probe_tag_names,
    provisional_probe,
    read_probe,
)
from vizcallbacks.records import Record
from vizcallbacks.render.colormap import HEATMAP_CMAP, check_cmap
from vizcallbacks.views.attribution import (
    SIDE_BY_SIDE,
    attribution_records,
    faithfulness_records,
)

__all__ = ["AttributionLogger", "AttributionStep"]


@dataclass(frozen=True)
class AttributionStep:
    """One step's maps per method and, with ``sanity_check``, each method's mean Spearman
    correlation with the maps of the model whose top layer was re-initialized."""

    results: dict[str, Attribution]
    sanity: dict[str, float] | None = None
    faithfulness: MethodFaithfulness | None = None


class AttributionLogger(VisualizationCallback):
    """Log every chosen attribution method's map of each probe, once before training and every
    epoch, with one picture of all methods side by side.

    Images ``attribution/<method>[/<probe>]`` (map over the probe),
    ``attribution_heatmap/<method>[/<probe>]`` (with ``individual``) and
    ``attribution_methods/all_probes`` (a row per probe, a column per method); with
    ``sanity_check``, scalars ``attribution_sanity/<method>``; with ``faithfulness``, scalars
    ``attribution_deletion_auc/<method>``, ``attribution_insertion_auc/<method>``,
    ``attribution_mu_fidelity/<method>`` (``random`` for random maps) and the picture
    ``attribution_curves/all_probes``.

    Args:
        probe: one sample or a batch, preprocessed like training data: images ``(H, W, C)``,
            signals ``(T, C)``, volumes or videos ``(D, H, W, C)``, the model's input rank
            telling which; several inputs (a tuple or dict of arrays) for the CAM methods.
        writers: where to log, e.g. ``[vc.TensorBoardWriter("logs")]``.
        methods: method names (see ``ALL_METHODS``: saliency, smoothgrad, gradients_x_inputs,
            integrated_gradients, occlusion, grad_cam, grad_cam_plus_plus, layer_cam, score_cam,
            faster_score_cam), or a dict of name → options, e.g.
            ``{"integrated_gradients": {"steps": 64}, "occlusion": {"patch": 8}}``.
        class_index: the class to explain, one int for every probe or one per probe; ``None``
            the predicted one.
        class_names: a name per class, for the captions of the side-by-side picture.
        every_n_epochs: log after every n-th epoch (and after the last).
        layer: the layer the CAM methods explain; ``None`` takes the last 4-D one.
        cmap: matplotlib colormap of the maps.
        alpha: weight of the map over the image, in [0, 1].
        probe_names: one name per probe for the tags; indices by default.
        output: the output to explain (name or index) when the model has several.
        display: what to draw under the maps instead of the probe, as in GradCAMLogger.
        sanity_check: also log, per method, how much its maps still agree (Spearman) with
            those of the model whose top layer's weights are re-initialized (Adebayo et al.,
            2018): near 1 means the map ignores what the model learned. The weights are
            restored exactly after each check.
        individual: log each method's map per probe (``2 x methods x probes`` images per step);
            ``False`` logs only the side-by-side picture, one image per step, which is what an
            MLflow run (about 20 ms of CPU per uploaded image) can afford with many probes.
        faithfulness: metrics of how well each method's maps follow the model, any of
            ``"deletion"``, ``"insertion"`` (20 steps, to black / from a blur; mean area under
            the probability curve over the probes) and ``"mu_fidelity"`` (64 random 20 %
            subsets), each also for uniformly random maps (fixed seed) as the chance line.
            Off by default: each metric costs ``(methods + 1) x probes x 21`` (MuFidelity
            ``x 65``) extra forward passes per logged step. Images input models only.
    """

    compiles_in_background = True

    def __init__(
        self,
        probe: Any,
        writers: Any,
        methods: Sequence[str] | Mapping[str, Mapping[str, Any]] = ALL_METHODS,
        class_index: int | Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        every_n_epochs: int = 1,
        layer: str | int | None = None,
        cmap: str = HEATMAP_CMAP,
        alpha: float = 0.4,
        probe_names: Sequence[str] | None = None,
        output: str | int | None = None,
        display: Any = None,
        sanity_check: bool = False,
        individual: bool = True,
        faithfulness: Sequence[str] = (),
    ) -> None:
        super().__init__(writers, every_n_epochs)
        self._given = given_probe(probe)
        self.options = method_options(methods)
        if class_index is not None and (
            isinstance(class_index, (bool, str, float)) or np.asarray(class_index).dtype == bool
        ):
            raise TypeError(
                "class_index must be None, an int or one int per probe. "
                f"Received: class_index={class_index!r}"
            )
        if output is not None and (isinstance(output, bool) or not isinstance(output, (str, int))):
            raise TypeError(f"output must be an output name or index. Received: output={output!r}")
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, (str, int))):
            raise TypeError(f"layer must be a layer name or index. Received: layer={layer!r}")
        for name, flag in (("sanity_check", sanity_check), ("individual", individual)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False. Received: {name}={flag!r}")
        if isinstance(faithfulness, str) or not isinstance(faithfulness, Sequence):
            raise TypeError(
                "faithfulness must be a sequence of metric names, e.g. ('deletion', "
                f"'insertion'). Received: faithfulness={faithfulness!r}"
            )
        unknown = [m for m in faithfulness if m not in FAITHFULNESS_METRICS]
        if unknown:
            raise ValueError(
                f"faithfulness: unknown metric(s) {unknown}; choose among "
                f"{', '.join(FAITHFULNESS_METRICS)}."
            )
        self.faithfulness = tuple(dict.fromkeys(faithfulness))
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be a number in [0, 1]. Received: alpha={alpha!r}")
        self.class_index = class_index
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        self.layer = layer
        self.cmap = check_cmap(cmap)
        self.alpha = float(alpha)
        self.output = output
        # Checked against the probe read as images now, and against the model's reading in setup.
        given = provisional_probe(self._given)
        self._display = None if display is None else checked_display(display, given)
        self._names_asked = probe_names
        self.sanity_check = sanity_check
        self.individual = individual
        # Settled against the model in setup (on_train_begin): one sample or a batch.
        self.probe = self.display = np.zeros((0,), np.float32)
        self.probe_names: list[str | None] = []
        self._classes: ClassIndex = class_index
        self._methods: dict[str, Method] = {}
        self._top: LayerRef | None = None
        self._scores: PerturbedScores | None = None

    def setup(self) -> None:
        self.probe = probe = read_probe(self._given, self.model)
        self.probe_names = probe_tag_names(self._names_asked, probe.shape[0])
        self._classes = self.explained_classes(probe.shape[0])
        recording = record_forward(self.model, model_inputs(self.model, probe))
        scores = ClassScores(self.model, recording, self.output, type(self).__name__)
        scores.class_indices(self._classes, probe.shape[0])  # in range for this model
        known = max(scores.num_classes, 2)
        if self.class_names is not None and len(self.class_names) != known:
            raise ValueError(
                f"class_names needs one name per class ({known}). "
                f"Received {len(self.class_names)} names"
            )
        self._methods = {
            name: build_method(name, options, self.model, probe, self.layer, self.output)
            for name, options in self.options.items()
        }
        self.display = self._display_for(probe)
        if self.sanity_check:
            self._top = top_layer(self.model, probe)
        if self.faithfulness:
            self._scores = scorer(self.model, probe.shape[1:], self.output)
        self.reuse_at_step_zero(self.compute())  # fails here, before training, if it must

    def explained_classes(self, n: int) -> ClassIndex:
        """The classes to explain for ``n`` probes (``None``: the predicted ones)."""
        return self.class_index

    def _display_for(self, probe: np.ndarray) -> np.ndarray:
        """What the maps are drawn over: ``display``, or the probe channels last."""
        if self._display is not None:
            if probe.ndim != 4:
                raise ValueError(
                    "display draws pictures under image maps; this model's probe has shape "
                    f"{probe.shape}. Leave display out: the probe itself is drawn."
                )
            return checked_display(self._display, probe)
        channels_first = any(getattr(m, "channels_first", False) for m in self._methods.values())
        return np.moveaxis(probe, 1, -1) if channels_first else probe

    def claims(self) -> set[tuple[str, ...]]:
        keys: set[tuple[str, ...]] = {("attribution_methods", SIDE_BY_SIDE)}
        if set(self.faithfulness) & {"deletion", "insertion"}:
            keys.add(("attribution_curves", SIDE_BY_SIDE))
        if self.individual:
            keys |= {
                ("attribution", method) + ((probe,) if probe else ())
                for method in self._methods
                for probe in self.probe_names
            }
        return keys

    def warm_up(self) -> None:
        self._explain()

    def compute(self) -> AttributionStep:
        results, faithful = self._explain()
        if self._top is None:
            return AttributionStep(results, faithfulness=faithful)
        sanity = {}
        with reinitialized(self._top.layer):
            for name, fn in self._methods.items():
                forgotten = fn(self.probe, results[name].class_index).heatmaps
                trained = results[name].heatmaps
                sanity[name] = float(
                    np.mean([spearman(a, b) for a, b in zip(trained, forgotten, strict=True)])
                )
        return AttributionStep(results, sanity, faithful)

    def _explain(self) -> tuple[dict[str, Attribution], MethodFaithfulness | None]:
        """Every method's maps for the probe, and their faithfulness when asked for."""
        results = {name: fn(self.probe, self._classes) for name, fn in self._methods.items()}
        faithful = None
        if self._scores is not None:
            maps = {name: result.heatmaps for name, result in results.items()}
            classes = next(iter(results.values())).class_index.astype(np.int32)
            probe = np.asarray(self.probe, np.float32)
            faithful = faithfulness_of(self._scores, probe, maps, classes, self.faithfulness)
        return results, faithful

    def view(self, payload: AttributionStep, step: int) -> list[Record]:
        for name, result in payload.results.items():
            self.warn_nonfinite(f"the {name} map", result.heatmaps)
        records = attribution_records(
            self.display,
            payload.results,
            self.probe_names,
            self.cmap,
            self.alpha,
            self.class_names,
            payload.sanity,
            self.individual,
        )
        if payload.faithfulness is not None:
            records += faithfulness_records(payload.faithfulness)
        return records
