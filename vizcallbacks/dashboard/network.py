"""The network the dashboard draws from a run read back (pure, no backend).

:func:`network_index` turns a :class:`~vizcallbacks.sources.run.RunData` into the JSON the
frontend draws: the probe images, the pictures of the whole network (gradient flow, CKA), then
every logged layer in network order, each with its images (by kind and probe), statistic curves
(epoch steps; batch-stepped ones apart, on their own axis) and dead-channel texts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vizcallbacks.sources.run import (
    DEAD_TEXT,
    LAYERS_PARAM,
    PROBES_PARAM,
    RunData,
    is_logged_by_us,
)
from vizcallbacks.tags import (
    BATCH_STEP_KINDS,
    RUN_LEVEL_KINDS,
    SCALAR_KINDS,
    parse_tag,
    tag,
)

__all__ = ["kind_order", "natural_key", "network_index"]

# Image kinds that name no layer of the network: the probe shown above the first layer, and the
# class comparison (a column per layer). The evolution strips are the layer view itself.
INPUT_KIND = "probe"
NOT_PER_LAYER = frozenset(
    {"probe", "class_comparison", "evolution", "filter_evolution", *RUN_LEVEL_KINDS}
)
# Run-level pictures drawn once at train end over every step: shown whatever step is chosen.
WHOLE_RUN_TAGS = frozenset({tag("gradient_flow", "evolution"), tag("cka", "convergence")})
_ORDER = ("activations", "mean_activation", "gradcam", "gradcam_heatmap", "filters", "filters_rgb")


def kind_order(kind: str) -> tuple[int, str]:
    """Sort key of image kinds in a layer's row: maps first, then explanations, then kernels;
    kinds the dashboard does not know (attribution maps, say) after them, by name."""
    return (_ORDER.index(kind), "") if kind in _ORDER else (len(_ORDER), kind)


def natural_key(name: str) -> list[Any]:
    """Sort key that puts ``conv2`` before ``conv10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _probes(run: RunData) -> list[str]:
    """Probe names from the probe images ``probe/input/<name>`` (none: one unnamed probe): in the
    order the ActivationLogger was given them (its ``probes_logged`` option), others after them in
    natural order (TensorBoard's fast loader lists tags sorted, not in the order written)."""
    prefix = tag(INPUT_KIND, "input") + "/"
    found = {t[len(prefix) :] for t in run.images if t.startswith(prefix)}
    logged = run.params.get(PROBES_PARAM)
    given = [str(n) for n in logged if str(n) in found] if isinstance(logged, list) else []
    return given + sorted(found - set(given), key=natural_key)


def _layer_order(run: RunData, probes: list[str]) -> tuple[list[str], str]:
    """Layers in network order: those the ActivationLogger named (its ``layers_logged`` option,
    forward order), then any other layer by name (natural order); and which rule applied."""
    logged = run.params.get(LAYERS_PARAM)
    named = [str(n) for n in logged] if isinstance(logged, list) else []
    others: set[str] = set()
    for key in [*run.images, *run.scalars, *run.texts]:
        kind = key.partition("/")[0]
        if kind not in NOT_PER_LAYER and is_logged_by_us(key):
            others.add(parse_tag(key, named, probes)[1])
    rest = sorted(others - set(named), key=natural_key)
    return named + rest, "logged" if named else "by name"


def _series(points: Mapping[int, Any]) -> dict[str, list[Any]]:
    steps = sorted(points)
    return {"steps": steps, "values": [points[s] for s in steps]}


def network_index(run: RunData) -> dict[str, Any]:
    """The run as the frontend draws it: ``{name, steps, probes, inputs, network, layers,
    order}``.

    ``network``: the run-level pictures ``[{kind, tag, probe, steps, values: refs, whole_run}]``
    (``whole_run``: drawn at train end, shown at every step). Each layer: ``images``
    ``[{kind, probe, steps, values: refs}]`` (kinds in :func:`kind_order`), ``stats`` and
    ``batch_stats`` ``[{kind, probe, steps, values}]`` (the latter's steps count batches: they
    never enter ``steps``, the epoch steps of the slider) and ``dead`` ``{steps, values: texts}``;
    ``probe`` is ``""`` where the tag has none.
    """
    probes = _probes(run)
    names, rule = _layer_order(run, probes)
    layers: dict[str, dict[str, Any]] = {
        name: {
            "name": name,
            "images": [],
            "stats": [],
            "batch_stats": [],
            "dead": {"steps": [], "values": []},
        }
        for name in names
    }
    steps: set[int] = set()
    inputs: list[dict[str, Any]] = []
    network: list[dict[str, Any]] = []
    for key, by_step in run.images.items():
        kind, layer, probe = parse_tag(key, layers, probes)
        entry = {"kind": kind, "probe": probe or "", "tag": key, **_series(by_step)}
        if kind == INPUT_KIND:
            inputs.append(entry)
        elif kind in RUN_LEVEL_KINDS:
            network.append({**entry, "whole_run": key in WHOLE_RUN_TAGS})
            if key not in WHOLE_RUN_TAGS:
                steps.update(by_step)
        elif kind not in NOT_PER_LAYER and layer in layers:
            layers[layer]["images"].append(entry)
            steps.update(by_step)
    for key, points in run.scalars.items():
        kind, layer, probe = parse_tag(key, layers, probes)
        if kind in SCALAR_KINDS and layer in layers:
            series = _series(dict(points))
            stat = {"kind": kind, "probe": probe or "", **series}
            if kind in BATCH_STEP_KINDS:
                layers[layer]["batch_stats"].append(stat)
                continue
            layers[layer]["stats"].append(stat)
            steps.update(series["steps"])
    for key, texts in run.texts.items():
        kind, layer, _ = parse_tag(key, layers, probes)
        if kind == DEAD_TEXT and layer in layers:
            layers[layer]["dead"] = _series(texts)
    for row in layers.values():
        row["images"].sort(key=lambda e: (kind_order(e["kind"]), e["probe"]))
        row["stats"].sort(key=lambda e: (e["kind"], e["probe"]))
        row["batch_stats"].sort(key=lambda e: (e["kind"], e["probe"]))
    network.sort(key=lambda e: e["tag"])
    return {
        "name": run.name,
        "steps": sorted(steps),
        "probes": probes or [""],
        "inputs": inputs,
        "network": network,
        "layers": [
            row for row in layers.values() if row["images"] or row["stats"] or row["batch_stats"]
        ],
        "order": rule,
    }
