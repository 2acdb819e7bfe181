"""The dashboard's data layer, by hand: tags parsed back, layers in network order, every image,
statistic and dead-channel text at its layer, and the report page that inlines them."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from vizcallbacks.dashboard.network import network_index
from vizcallbacks.dashboard.report import report_html
from vizcallbacks.sources.run import RunData, params_from_markdown
from vizcallbacks.tags import PARAMS_TAG, parse_tag, tag
from vizcallbacks.writers.tensorboard import params_markdown


@pytest.mark.parametrize(
    ("key", "layers", "probes", "expected"),
    [
        ("filters/conv1", [], [], ("filters", "conv1", None)),
        ("activations/base/conv1/cat", ["base/conv1"], [], ("activations", "base/conv1", "cat")),
        ("activations/base/conv1", ["base/conv1", "base"], [], ("activations", "base/conv1", None)),
        ("gradcam/base/conv1/dog", [], ["cat", "dog"], ("gradcam", "base/conv1", "dog")),
        ("gradcam/conv1/ear", [], ["cat"], ("gradcam", "conv1/ear", None)),
        ("gradients/conv1/kernel", ["conv1"], ["kernel"], ("gradients", "conv1", None)),
        ("weights/base/conv1/bias", [], [], ("weights", "base/conv1", None)),
        ("gradients_p50/conv1/kernel", [], ["kernel"], ("gradients_p50", "conv1", None)),
        ("gradient_flow/all_layers", ["all_layers"], [], ("gradient_flow", "", None)),
        ("cka/layers", ["layers"], ["layers"], ("cka", "", None)),
        ("cka_to_initial/conv1", [], [], ("cka_to_initial", "conv1", None)),
    ],
)
def test_parse_tag_splits_kind_layer_and_probe(key, layers, probes, expected) -> None:
    assert parse_tag(key, layers, probes) == expected


def test_params_table_reads_back() -> None:
    params = {"layers_logged": ["b/c1", "p|1"], "max_channels": 64, "cmap": "viridis"}
    assert params_from_markdown(params_markdown(params)) == params


def _run() -> RunData:
    """Two probes, a nested layer, a Dense layer, a logger the dashboard does not know."""
    probes = ("cat", "dog")
    layers = ["base/conv1", "pool", "dense"]
    run = RunData(name="run", params={"layers_logged": layers})
    for probe in probes:
        run.images[tag("probe", "input", probe)] = {0: f"in-{probe}"}
        for layer in layers[:2]:
            for kind in ("mean_activation", "activations"):
                run.images[tag(kind, layer, probe)] = {
                    s: f"{kind}-{layer}-{probe}-{s}" for s in (0, 1)
                }
        run.images[f"saliency/base/conv1/{probe}"] = {1: f"sal-{probe}"}  # a kind added later
        run.images[tag("gradcam", "pool", probe)] = {0: f"cam-{probe}-0", 1: f"cam-{probe}-1"}
    run.images[tag("filters", "base/conv1")] = {0: "f0", 1: "f1"}
    run.images[tag("evolution", "pool")] = {1: "strip"}
    for layer in layers:
        run.scalars[tag("activation_mean", layer)] = [(0, 0.5), (1, 0.25)]
    run.scalars["epoch_loss"] = [(0, 2.0)]  # Keras' own: not ours
    run.texts[tag("dead_channel_indices", "pool")] = {1: "1 of the channels are zero: 3"}
    return run


def test_network_index_orders_layers_and_places_every_image() -> None:
    index = network_index(_run())
    assert [layer["name"] for layer in index["layers"]] == ["base/conv1", "pool", "dense"]
    assert index["order"] == "logged" and index["steps"] == [0, 1]
    assert index["probes"] == ["cat", "dog"]
    assert [(e["probe"], e["values"]) for e in index["inputs"]] == [
        ("cat", ["in-cat"]),
        ("dog", ["in-dog"]),
    ]
    conv, pool, dense = index["layers"]
    kinds = [(e["kind"], e["probe"]) for e in conv["images"]]
    assert kinds == [
        ("activations", "cat"), ("activations", "dog"), ("mean_activation", "cat"),
        ("mean_activation", "dog"), ("filters", ""), ("saliency", "cat"), ("saliency", "dog"),
    ]  # fmt: skip
    assert conv["images"][0]["steps"] == [0, 1]
    assert conv["images"][0]["values"] == [
        "activations-base/conv1-cat-0",
        "activations-base/conv1-cat-1",
    ]
    assert [e["kind"] for e in pool["images"]].count("gradcam") == 2
    assert "evolution" not in {e["kind"] for e in pool["images"]}  # the layer view replaces it
    assert pool["dead"] == {"steps": [1], "values": ["1 of the channels are zero: 3"]}
    assert dense["images"] == [] and dense["stats"][0]["values"] == [0.5, 0.25]


def test_gradient_and_representation_tags_go_to_their_layer_or_to_the_whole_network() -> None:
    run = _run()
    for kind in ("gradient_norm", "update_ratio", "cka_to_initial"):
        run.scalars[tag(kind, "pool")] = [(0, 1.0), (1, 2.0)]
    run.scalars[tag("batch_weight_norm", "pool")] = [(40, 3.0), (80, 4.0)]  # batches, not epochs
    run.images[tag("gradient_flow", "all_layers")] = {0: "flow-0", 1: "flow-1"}
    run.images[tag("cka", "layers")] = {0: "cka-0", 1: "cka-1"}
    run.images[tag("gradient_flow", "evolution")] = {1: "heat"}
    run.images[tag("cka", "convergence")] = {1: "conv"}
    index = network_index(run)
    assert [layer["name"] for layer in index["layers"]] == ["base/conv1", "pool", "dense"]
    assert index["steps"] == [0, 1]  # the batch steps 40 and 80 stay off the slider
    pool = index["layers"][1]
    assert [s["kind"] for s in pool["stats"]] == [
        "activation_mean", "cka_to_initial", "gradient_norm", "update_ratio",
    ]  # fmt: skip
    assert pool["batch_stats"] == [
        {"kind": "batch_weight_norm", "probe": "", "steps": [40, 80], "values": [3.0, 4.0]}
    ]
    assert [(e["tag"], e["values"], e["whole_run"]) for e in index["network"]] == [
        ("cka/convergence", ["conv"], True),
        ("cka/layers", ["cka-0", "cka-1"], False),
        ("gradient_flow/all_layers", ["flow-0", "flow-1"], False),
        ("gradient_flow/evolution", ["heat"], True),
    ]
    page = report_data(report_html([run], lambda ref: ref.encode(), "t"))
    (inlined,) = page["runs"]
    shown = {ref for entry in inlined["network"] for ref in entry["values"]}
    assert {base64.b64decode(page["images"][ref].split(",", 1)[1]) for ref in shown} == {
        b"conv", b"cka-0", b"cka-1", b"flow-0", b"flow-1", b"heat",
    }  # fmt: skip


def test_without_the_logged_layer_list_layers_come_by_name() -> None:
    run = _run()
    run.params = {}
    run.scalars[tag("activation_mean", "conv10")] = run.scalars[
        tag("activation_mean", "conv2")
    ] = []
    index = network_index(run)
    assert index["order"] == "by name"
    names = [layer["name"] for layer in index["layers"]]
    assert names == ["base/conv1", "conv2", "conv10", "dense", "pool"]


def report_data(page: str) -> dict[str, Any]:
    """The runs and images a report page inlines (its ``vc-data`` JSON)."""
    found = re.search(r'<script type="application/json" id="vc-data">(.*?)</script>', page, re.S)
    assert found is not None, "no vc-data in the page"
    return dict(json.loads(found.group(1)))


def test_report_page_inlines_each_image_once_and_reads_its_own_data() -> None:
    run = _run()
    blobs = {ref: f"png:{ref}".encode() for refs in run.images.values() for ref in refs.values()}
    page = report_html([run], blobs.__getitem__, "a </script> title")
    assert "</script> title" not in page  # escaped
    data = report_data(page)
    (index,) = data["runs"]
    shown = [s for layer in index["layers"] for s in layer["images"]] + index["inputs"]
    ids = [ref for series in shown for ref in series["values"]]
    assert len(ids) == len(set(ids)) == len(data["images"]) == len(blobs) - 1  # no strip
    for series in shown:
        for step, ref in zip(series["steps"], series["values"], strict=True):
            uri = data["images"][ref]
            assert uri.startswith("data:")
            assert base64.b64decode(uri.split(",", 1)[1]) == blobs[run.images[series["tag"]][step]]
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert PARAMS_TAG not in page


def test_report_inlines_a_picture_logged_twice_once_and_smaller() -> None:
    import io

    import numpy as np
    from PIL import Image

    from vizcallbacks.render.png import encode_png

    tiles = np.random.default_rng(0).integers(0, 255, (8, 12, 3), dtype=np.uint8)
    still = np.kron(tiles, np.ones((6, 6, 1), np.uint8))  # a layer that did not change
    blobs = {"a0": encode_png(still), "a1": encode_png(still), "a2": encode_png(still[::-1])}
    run = RunData(name="run", images={tag("activations", "conv1"): {0: "a0", 1: "a1", 2: "a2"}})
    data = report_data(report_html([run], blobs.__getitem__, "t"))
    (series,) = data["runs"][0]["layers"][0]["images"]
    first, again, other = series["values"]
    assert first == again != other and len(data["images"]) == 2
    for ref, pixels in ((first, still), (other, still[::-1])):
        png = base64.b64decode(data["images"][ref].split(",", 1)[1])
        assert len(png) < len(blobs["a0"])  # deflated at zlib's best level
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), pixels)
