"""Shared fixtures: quiet TensorFlow, a fixed seed, and tiny real models and data."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TensorFlow's own CPU kernels take no channels_first convolution; its oneDNN kernels do. It turns
# oneDNN on by itself only on some CPUs (not on AMD EPYC), so the channels_first tests ask for it.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import pytest

pytest_plugins = ["tests.mlflow_server", "tests.postgres_server"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip ``tensorflow_only`` tests (TensorFlow written into the test itself) on JAX/PyTorch."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"checks against TensorFlow code; Keras backend is {backend}")
    for item in items:
        if item.get_closest_marker("tensorflow_only"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    keras.utils.set_random_seed(0)
    keras.config.disable_interactive_logging()


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Real 8x8 handwritten digits (scikit-learn ships them), upscaled to 16x16, in [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype("float32").repeat(2, axis=1).repeat(2, axis=2)
    return images[..., None][:256], data.target[:256].astype("int64")
