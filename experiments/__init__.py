"""Reference experiments: five real CNNs trained offline on real data, with the callbacks wired in.

Run one with ``python -m experiments.<name>``; each module also exposes ``build_model()``.
"""

from __future__ import annotations

__all__ = ["EXPERIMENTS"]

EXPERIMENTS = ("fashion_cnn", "mnist_conv10", "lenet5", "cats_vs_dogs", "vgg16")
