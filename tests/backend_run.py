"""Load saved weights into a model on the backend ``KERAS_BACKEND`` names and log what
vizcallbacks sees of a fixed probe; run as a subprocess, one per backend.

``python -m tests.backend_run WEIGHTS OUT_DIR``: ``fit(epochs=0)`` with ActivationLogger and
GradCAMLogger writes ``OUT_DIR/logs`` (the snapshot before training), and ``OUT_DIR/arrays.npz``
keeps the float arrays (activations, Grad-CAM and attribution heatmaps, the loss's gradients)
and whether TensorFlow was imported.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from sklearn.datasets import load_digits

import vizcallbacks as vc
from tests import models


def probe() -> tuple[np.ndarray, np.ndarray]:
    """The first 64 real digits upscaled to 16x16 in [0, 1], and their labels."""
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32").repeat(2, 1).repeat(2, 2)[..., None][:64]
    return x, digits.target[:64]


def main(weights: str, out_dir: str) -> None:
    x, y = probe()
    model = models.compiled(models.functional())
    model.load_weights(weights)
    writers = [vc.TensorBoardWriter(os.path.join(out_dir, "logs"))]
    callbacks = [vc.ActivationLogger(x[:4], writers), vc.GradCAMLogger(x[:4], writers)]
    model.fit(x, y, epochs=0, verbose=0, callbacks=callbacks)
    arrays = {f"act/{k}": v for k, v in vc.layer_activations(model, x[:8]).items()}
    arrays["gradcam"] = vc.grad_cam(model, x[:8])
    arrays["gradcam_class3"] = vc.grad_cam(model, x[:8], class_index=3)
    arrays["saliency"] = vc.saliency(model, x[:8])
    arrays["smoothgrad"] = vc.saliency(model, x[:8], smooth_samples=8)
    arrays["gradients_x_inputs"] = vc.gradients_x_inputs(model, x[:8])
    arrays["integrated_gradients"] = vc.integrated_gradients(model, x[:8], steps=8)
    arrays["occlusion"] = vc.occlusion_sensitivity(model, x[:8])
    arrays["grad_cam_plus_plus"] = vc.grad_cam_plus_plus(model, x[:8])
    arrays["layer_cam"] = vc.layer_cam(model, x[:8])
    arrays["score_cam"] = vc.score_cam(model, x[:8])
    ranking = np.random.default_rng(0).random((8, 16, 16))  # one map on every backend
    arrays["deletion_curve"] = vc.deletion_curve(model, x[:8], ranking, steps=10).probabilities
    arrays["insertion_curve"] = vc.insertion_curve(model, x[:8], ranking, steps=10).probabilities
    arrays["mu_fidelity"] = vc.mu_fidelity(model, x[:8], ranking, samples=16)
    for layer, weights in vc.layer_gradients(model, x[:16], y[:16]).items():
        arrays |= {f"gradients/{layer}/{name}": g for name, g in weights.items()}
    arrays["tensorflow_imported"] = np.array("tensorflow" in sys.modules)
    np.savez(os.path.join(out_dir, "arrays.npz"), **arrays)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
