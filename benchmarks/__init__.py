"""Benchmarks of vizcallbacks: cost per epoch, blocking time, memory and scale.

Run ``python -m benchmarks.overhead`` from the repository root (``--quick`` for a smoke run).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out
