"""Where one logged step's time goes: the pure functions timed one by one on the same arrays.

The stages are those of ``ActivationLogger`` + ``FilterLogger``: the forward pass (training
thread), then on the background thread statistics, rendering (tiling, colour, evolution rows),
PNG encoding (``Image.png``, once per picture for every writer; Pillow's level-1 encode of the
same pictures beside it, the encoder used before) and writing; MLflowWriter's delivery to the
store runs on its own sender threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmarks.common import make_writers, median, wait_delivered

__all__ = ["StageImages", "stage_seconds"]

StageImages = dict[str, np.ndarray]


def _timed(job: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``job`` over ``repeats`` runs, after one untimed warm-up run."""
    job()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        job()
        times.append(time.perf_counter() - started)
    return median(times)


def _activations(model: keras.Model, probe: np.ndarray) -> dict[str, np.ndarray]:
    from vizcallbacks.compute.forward import ActivationExtractor
    from vizcallbacks.compute.layers import select_layers

    return ActivationExtractor(model, select_layers(model, None))(probe)


def _render(model: keras.Model, outputs: dict[str, np.ndarray]) -> StageImages:
    """Every picture one step of the two loggers draws (probe images by layers, filters)."""
    import vizcallbacks as vc
    from vizcallbacks.compute.filters import conv_layers, filter_weights, normalize_to_unit
    from vizcallbacks.render.evolution import evolution_row
    from vizcallbacks.render.tiling import mean_map_image

    images: StageImages = {}
    for layer, values in outputs.items():
        if values.ndim != 4:
            continue
        for i, maps in enumerate(values):
            images[f"activations/{layer}/{i}"] = vc.tile_maps(maps)
            images[f"mean_activation/{layer}/{i}"] = mean_map_image(maps)
        evolution_row(values[0])
    for ref in conv_layers(model):
        filters = normalize_to_unit(filter_weights(ref.layer))
        images[f"filters/{ref.name}"] = vc.tile_filters(filters)
        evolution_row(np.moveaxis(filters[..., 0], 0, -1))
    return images


def _encode(images: StageImages) -> None:
    """Each picture's PNG, encoded as the writers get it (``Image.png``, once per record)."""
    from vizcallbacks.records import Image

    for tag, image in images.items():
        _ = Image(tag, image).png


def _encode_with_pillow(images: StageImages) -> None:
    """The same pictures through Pillow's PNG encoder at the same zlib level (the "before")."""
    import io

    from PIL import Image as PILImage

    from vizcallbacks.render.png import PNG_LEVEL

    for image in images.values():
        PILImage.fromarray(image).save(io.BytesIO(), format="PNG", compress_level=PNG_LEVEL)


def _write(writer: Any, images: StageImages, outputs: dict[str, np.ndarray], step: int) -> None:
    import vizcallbacks as vc
    from vizcallbacks.records import Histogram, Image, Record, Scalars

    records: list[Record] = []
    for layer, values in outputs.items():
        stats = vc.activation_statistics(values)
        records.append(Scalars({f"activation_mean/{layer}": stats.mean}))
        records.append(Histogram(f"channel_means/{layer}", stats.channel_means))
    records.extend(Image(tag, image) for tag, image in images.items())
    writer.write(records, step)
    writer.flush()


def stage_seconds(
    model: keras.Model, probe: np.ndarray, root: Path, repeats: int = 3
) -> dict[str, float]:
    """Median seconds of each stage of one logged step of the two loggers on ``model``.

    Writing includes the PNG encoding of each new ``Image`` record (timed apart too).
    Wall seconds; delivery runs on MLflowWriter's sender thread while the main thread waits.
    """
    import vizcallbacks as vc

    outputs = _activations(model, probe)
    images = _render(model, outputs)
    tensorboard, mlflow = make_writers(root, "stages")
    steps = iter(range(1, 10_000))
    seconds = {
        "forward": _timed(lambda: _activations(model, probe), repeats),
        "statistics": _timed(
            lambda: [vc.activation_statistics(v) for v in outputs.values()], repeats
        ),
        "render": _timed(lambda: _render(model, outputs), repeats),
        "encode": _timed(lambda: _encode(images), repeats),
        "encode_pillow": _timed(lambda: _encode_with_pillow(images), repeats),
        "write_tensorboard": _timed(
            lambda: _write(tensorboard, images, outputs, next(steps)), repeats
        ),
    }
    _write(mlflow, images, outputs, next(steps))  # warm-up: the run and the spool exist
    wait_delivered([mlflow])
    started = time.perf_counter()
    _write(mlflow, images, outputs, next(steps))
    seconds["write_mlflow"] = time.perf_counter() - started
    wait_delivered([mlflow])
    seconds["deliver_mlflow"] = time.perf_counter() - started - seconds["write_mlflow"]
    seconds["images"] = float(len(images))
    tensorboard.close()
    mlflow.close()
    return seconds
