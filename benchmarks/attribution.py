"""Attribution maps against their peers: ``python -m benchmarks.attribution [--out FILE]``.

Every method of ``vc`` on the Fashion-MNIST CNN of ``experiments.fashion_cnn`` (as a Functional
model, so that the peers run; trained one epoch), 11 probe images, median of 3 calls after a
warm-up, wall and process CPU (``resource.getrusage``), beside tf-explain and tf-keras-vis with
the same settings where they run; then the whole AttributionLogger step with every method
(compute on the training thread + drawing and writing), to TensorBoard, and to TensorBoard and
MLflow (SQLite store) with and without the per-probe images. About 5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmarks.common import (
    Row,
    cpu_seconds,
    judged,
    machine_description,
    make_writers,
    measured,
    progress,
    table_markdown,
)
from benchmarks.notebook import repeated_calls

__all__ = ["logger_rows", "main", "method_rows"]

REPEATS = 3
SAMPLES = 20  # SmoothGrad's noisy copies and integrated gradients' steps, as in the issue
TOP_K = 10  # Faster Score-CAM's channels


def _ours(model: keras.Model, images: np.ndarray) -> dict[str, Callable[[], Any]]:
    import vizcallbacks as vc

    return {
        "saliency": lambda: vc.saliency(model, images),
        "SmoothGrad (20)": lambda: vc.saliency(model, images, smooth_samples=SAMPLES),
        "gradients x inputs": lambda: vc.gradients_x_inputs(model, images),
        "integrated gradients (20)": lambda: vc.integrated_gradients(model, images, steps=SAMPLES),
        "occlusion (patch 4)": lambda: vc.occlusion_sensitivity(model, images, patch=4),
        "Grad-CAM": lambda: vc.grad_cam(model, images),
        "Grad-CAM++": lambda: vc.grad_cam_plus_plus(model, images),
        "Score-CAM (64 channels)": lambda: vc.score_cam(model, images),
        "Faster Score-CAM (10)": lambda: vc.score_cam(model, images, top_k=TOP_K),
        "LayerCAM": lambda: vc.layer_cam(model, images),
    }


def _tf_explain(model: keras.Model, images: np.ndarray, layer: str) -> dict[str, Callable[[], Any]]:
    try:
        from tf_explain.core import (
            GradCAM,
            GradientsInputs,
            IntegratedGradients,
            OcclusionSensitivity,
            SmoothGrad,
            VanillaGradients,
        )
    except Exception as err:  # not installed, or OpenCV missing
        progress(f"tf-explain not compared: {type(err).__name__}: {str(err)[:120]}")
        return {}
    data = (images, None)
    return {
        "saliency": lambda: VanillaGradients().explain(data, model, 0),
        "SmoothGrad (20)": lambda: SmoothGrad().explain(data, model, 0, num_samples=SAMPLES),
        "gradients x inputs": lambda: GradientsInputs().explain(data, model, 0),
        "integrated gradients (20)": lambda: IntegratedGradients().explain(
            data, model, 0, n_steps=SAMPLES
        ),
        "occlusion (patch 4)": lambda: OcclusionSensitivity().explain(data, model, 0, 4),
        "Grad-CAM": lambda: GradCAM().explain(data, model, 0, layer_name=layer),
    }


def _tf_keras_vis(
    model: keras.Model, images: np.ndarray, layer: str
) -> dict[str, Callable[[], Any]]:
    try:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.layercam import Layercam
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.scorecam import Scorecam
        from tf_keras_vis.utils.scores import CategoricalScore
    except Exception as err:
        progress(f"tf-keras-vis not compared: {type(err).__name__}: {str(err)[:120]}")
        return {}
    score = CategoricalScore(list(np.argmax(model.predict(images, verbose=0), axis=1)))
    saliency = Saliency(model, clone=False)
    cams = {kind: kind(model, clone=False) for kind in (Gradcam, GradcamPlusPlus, Layercam)}
    scorecam = Scorecam(model, clone=False)
    return {
        "saliency": lambda: saliency(score, images),
        "SmoothGrad (20)": lambda: saliency(score, images, smooth_samples=SAMPLES),
        "Grad-CAM": lambda: cams[Gradcam](score, images, penultimate_layer=layer),
        "Grad-CAM++": lambda: cams[GradcamPlusPlus](score, images, penultimate_layer=layer),
        "Score-CAM (64 channels)": lambda: scorecam(score, images, penultimate_layer=layer),
        "Faster Score-CAM (10)": lambda: scorecam(
            score, images, penultimate_layer=layer, max_N=TOP_K
        ),
        "LayerCAM": lambda: cams[Layercam](score, images, penultimate_layer=layer),
    }


def method_rows(model: keras.Model, images: np.ndarray) -> list[Row]:
    """Per method: ours, then each peer that has it; wall and CPU in ms."""
    layer = [la.name for la in model.layers if len(la.output.shape) == 4][-1]
    libraries = {
        "vizcallbacks": _ours(model, images),
        "tf-explain": _tf_explain(model, images, layer),
        "tf-keras-vis": _tf_keras_vis(model, images, layer),
    }
    rows = []
    for method in libraries["vizcallbacks"]:
        for library, jobs in libraries.items():
            if method not in jobs:
                continue
            try:
                walls, cpus = repeated_calls(jobs[method], REPEATS)
            except Exception as err:  # a peer broken against Keras 3 for this method
                progress(f"{library} {method} failed: {type(err).__name__}: {str(err)[:120]}")
                continue
            progress(f"{method}, {library}: {1000 * float(np.median(walls)):.1f} ms")
            what = f"{method}, {library}, {len(images)} images"
            rows.append(measured(f"{what}: wall", [1000 * w for w in walls], "ms"))
            rows.append(measured(f"{what}: CPU", [1000 * c for c in cpus], "ms"))
    return rows


def logger_rows(model: keras.Model, images: np.ndarray, names: list[str], root: Path) -> list[Row]:
    """The whole AttributionLogger step, every method: compute (training thread) and publish
    (background) wall per step, and the process CPU per step over a plain fit; to TensorBoard,
    then to TensorBoard and MLflow (SQLite store) with and without the individual images."""
    import vizcallbacks as vc

    x = np.repeat(images, 3, axis=0)[:32]
    y = np.argmax(model.predict(x, verbose=0), axis=1)
    epochs = 4
    steps = epochs + 1  # step 0 and one per epoch

    def fit(callbacks: list[Any]) -> float:
        started = cpu_seconds()
        model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks)
        for callback in callbacks:
            callback.finish()
        return cpu_seconds() - started

    fit([])  # the train step traced, untimed
    plain = float(np.median([fit([]) for _ in range(REPEATS)]))
    setups = {
        "TensorBoard": (lambda i: [vc.TensorBoardWriter(root / f"tb_{i}")], True),
        "TensorBoard + MLflow": (lambda i: make_writers(root, f"both_{i}"), True),
        "TensorBoard + MLflow, individual=False": (lambda i: make_writers(root, f"one_{i}"), False),
    }
    rows = []
    for label, (writers, individual) in setups.items():
        loggers, cpu = [], []
        for i in range(REPEATS):
            logger = vc.AttributionLogger(
                images, writers(i), probe_names=names, individual=individual
            )
            cpu.append(1000 * (fit([logger]) - plain) / steps)
            loggers.append(logger)
        compute = [1000 * t for lg in loggers for t in lg.timings["compute"][1:]]  # not setup's
        publish = [1000 * t for lg in loggers for t in lg.timings["publish"]]
        whole = [c + p for c, p in zip(compute, publish, strict=False)]
        what = f"AttributionLogger, all 10 methods, {len(images)} probes, {label}"
        progress(f"{what}: {float(np.median(cpu)):.0f} ms CPU per step")
        rows += [
            measured(f"{what}: compute per step (training thread), wall", compute, "ms"),
            measured(f"{what}: draw + write per step (background), wall", publish, "ms"),
            judged(f"{what}: compute + draw + write per step, wall", whole, "ms", 1000.0),
            judged(f"{what}: process CPU per step over a plain fit", cpu, "ms", 1000.0),
        ]
    return rows


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.attribution", description=__doc__)
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args(argv)
    from experiments import fashion_cnn
    from experiments.datasets import load_fashion_mnist, scaled

    split = load_fashion_mnist()
    images, names = fashion_cnn.probe(split)
    sequential = fashion_cnn.build_model()
    model = keras.Model(sequential.inputs, sequential.outputs[0])  # Functional, as peers need
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    small = split.limit(3000)
    model.fit(scaled(small.x_train), small.y_train, epochs=1, batch_size=64, verbose=0)
    rows = method_rows(model, images)
    with tempfile.TemporaryDirectory() as root:
        rows += logger_rows(model, images, names, Path(root))
    table = f"{machine_description()}\n\n{table_markdown(rows)}\n"
    print(table)
    if args.out:
        args.out.write_text(table, encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
