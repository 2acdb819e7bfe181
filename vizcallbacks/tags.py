"""Tags for everything logged: the one place where names become TensorBoard tags and MLflow keys.

Layer names may hold any character; MLflow keys accept only letters, digits, ``_ - . / space``
and must not climb directories, so every name passes through :func:`safe_name` here and nowhere
else. :func:`unique_safe_names` keeps two different layers from colliding into one key.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

__all__ = [
    "BATCH_STEP_KINDS",
    "HISTOGRAM_KINDS",
    "IMAGE_KINDS",
    "MAX_TAG_LENGTH",
    "PARAMS_TAG",
    "QUANTILES",
    "RUN_LEVEL_KINDS",
    "SCALAR_KINDS",
    "TEXT_KINDS",
    "WEIGHT_HISTOGRAM_KINDS",
    "is_epoch_step",
    "layer_candidates",
    "option_key",
    "parse_tag",
    "quantile_tag",
    "safe_name",
    "shorten",
    "tag",
    "unique_safe_names",
]

# The whole vocabulary: the first segment of every tag, by what it holds.
IMAGE_KINDS = frozenset(
    {
        "activations",
        "mean_activation",
        "filters",
        "filters_rgb",
        "gradcam",
        "gradcam_heatmap",
        "filter_patterns",
        "class_patterns",
        "evolution",
        "filter_evolution",
        "class_comparison",
        "probe",
        "attribution",
        "attribution_heatmap",
        "attribution_methods",
        "attribution_curves",
        "cka",
        "gradient_flow",
    }
)
SCALAR_KINDS = frozenset(
    {
        "activation_mean",
        "activation_std",
        "activation_zero_fraction",
        "dead_channels",
        "dead_channel_fraction",
        "filter_drift",
        "filter_drift_from_init",
        "gradcam_predicted_class",
        "gradcam_probability",
        "filter_patterns_seconds",
        "class_patterns_seconds",
        "attribution_sanity",
        "attribution_deletion_auc",
        "attribution_insertion_auc",
        "attribution_mu_fidelity",
        "cka_to_initial",
        "cka_to_previous",
        "gradient_norm",
        "weight_norm",
        "update_ratio",
        "gradient_to_weight",
        "batch_weight_norm",
        "batch_update_ratio",
    }
)
HISTOGRAM_KINDS = frozenset({"channel_means", "gradients", "weights"})
TEXT_KINDS = frozenset({"dead_channel_indices", "activation_table", "gradcam_prediction"})
# Kinds whose steps count training batches, not epochs: never the step a resumed run continues at.
BATCH_STEP_KINDS = frozenset({"batch_weight_norm", "batch_update_ratio"})
# Image kinds of the whole network, not of one layer (``gradient_flow/all_layers``, ``cka/layers``).
RUN_LEVEL_KINDS = frozenset({"gradient_flow", "cka"})
# Histogram kinds whose last segment names a weight of the layer (``gradients/conv1/kernel``).
WEIGHT_HISTOGRAM_KINDS = frozenset({"gradients", "weights"})
PARAMS_TAG = "vizcallbacks/params"  # the options of every logger, as one text entry
# A histogram's summary for sinks without a histogram type (MLflow): name → quantile level.
QUANTILES = {"min": 0.0, "p25": 0.25, "p50": 0.5, "p75": 0.75, "max": 1.0}
# Long enough for any real layer path; short enough that MLflow's keys (250) and the image files
# log_image names after a key (key + ~75 characters, within a file name's 255) always fit.
MAX_TAG_LENGTH = 160
_KINDS = IMAGE_KINDS | SCALAR_KINDS | HISTOGRAM_KINDS | TEXT_KINDS

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-.]+")


def safe_name(name: str) -> str:
    """Return ``name`` made safe for a tag segment, an MLflow key and a file name.

    Non-ASCII letters lose their accents (``é`` → ``e``), every other character outside
    ``[A-Za-z0-9_.-]`` becomes ``_``, runs of dots collapse to one (no ``..``), and an empty result
    becomes ``_``. Slashes are replaced too: a nested layer's path is joined by the caller.
    """
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("_", ascii_name)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip(".")
    return cleaned or "_"


def unique_safe_names(paths: Iterable[tuple[str, ...]]) -> list[str]:
    """Map layer paths (``("vgg16", "block1_conv1")``) to distinct safe names joined by ``/``.

    Two paths that become the same safe name get ``_2``, ``_3``... suffixes in order, so that no
    two layers ever share a tag.
    """
    names: list[str] = []
    seen: set[str] = set()
    for path in paths:
        base = "/".join(safe_name(part) for part in path)
        name, n = base, 1
        while name in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name)
        names.append(name)
    return names


def tag(kind: str, layer: str, probe: str | None = None) -> str:
    """``activations/<layer>``, ``activation_mean/<layer>``...; with a probe name appended.

    ``kind`` must belong to the vocabulary above, so that no tag is invented elsewhere. A tag
    longer than ``MAX_TAG_LENGTH`` is shortened by :func:`shorten`.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown tag kind {kind!r}; add it to vizcallbacks/tags.py")
    name = f"{kind}/{layer}"
    return shorten(name if probe is None else f"{name}/{safe_name(probe)}")


def shorten(name: str, limit: int = MAX_TAG_LENGTH) -> str:
    """``name`` if it fits in ``limit`` characters, else its start and a hash of the whole.

    ``conv/<300 characters>`` becomes ``conv/<first characters>_h1a2b3c4d5``: the same name
    maps the same way in every writer and every run, and two names that differ anywhere stay
    different.
    """
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
    return f"{name[: limit - 12].rstrip('/.')}_h{digest}"


def quantile_tag(histogram_tag: str, stat: str) -> str:
    """``channel_means/<layer>`` → ``channel_means_p50/<layer>`` (``stat`` from QUANTILES)."""
    kind, _, rest = histogram_tag.partition("/")
    return f"{kind}_{stat}/{rest}" if rest else f"{kind}_{stat}"


def option_key(name: str) -> str:
    """``vizcallbacks.<name>``: the run tag of one logger option (``vizcallbacks_version`` too)."""
    stem = name[len("vizcallbacks_") :] if name.startswith("vizcallbacks_") else name
    return f"vizcallbacks.{safe_name(stem)}"


def layer_candidates(key: str) -> list[str]:
    """The layers an image key may name, longest first: ``activations/base/conv1/cat`` →
    ``["base/conv1/cat", "base/conv1", "base"]`` (a probe suffix cannot be told from a layer)."""
    parts = key.split("/")[1:]
    return ["/".join(parts[:end]) for end in range(len(parts), 0, -1)]


def parse_tag(
    key: str, layers: Iterable[str] = (), probes: Iterable[str] = ()
) -> tuple[str, str, str | None]:
    """``(kind, layer, probe)`` of a tag: ``activations/base/conv1/cat`` → ``("activations",
    "base/conv1", "cat")`` when ``base/conv1`` is among the known ``layers``; else a last segment
    among the known ``probes`` is the probe, and the rest the layer.

    A run-level picture (:data:`RUN_LEVEL_KINDS`) names no layer: ``("cka", "", None)``; a weight
    histogram's last segment is the weight, never a probe: ``gradients/conv1/kernel`` (and its
    MLflow quantiles ``gradients_p50/conv1/kernel``) → ``("gradients", "conv1", None)``.
    """
    kind, _, rest = key.partition("/")
    if kind in RUN_LEVEL_KINDS:
        return kind, "", None
    base, _, stat = kind.rpartition("_")
    if kind in WEIGHT_HISTOGRAM_KINDS or (base in WEIGHT_HISTOGRAM_KINDS and stat in QUANTILES):
        return kind, rest.rpartition("/")[0] or rest, None
    known = set(layers)
    for layer in layer_candidates(key):
        if layer in known:
            return kind, layer, rest[len(layer) + 1 :] or None
    head, _, last = rest.rpartition("/")
    if head and last in set(probes):
        return kind, head, last
    return kind, rest, None


def is_epoch_step(key: str) -> bool:
    """True when ``key``'s steps count epochs (every kind but :data:`BATCH_STEP_KINDS`)."""
    return key.partition("/")[0] not in BATCH_STEP_KINDS
