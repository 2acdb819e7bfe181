"""Load saved weights on the backend ``KERAS_BACKEND`` names and log RepresentationLogger's step
0 for a fixed probe set; run as a subprocess, one per backend.

``python -m tests.cka_backend_run WEIGHTS OUT_DIR``: ``fit(epochs=0)`` writes ``OUT_DIR``'s
event file and ``OUT_DIR/files/cka/grams_step_000000.npz``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import vizcallbacks as vc
from tests import models
from tests.backend_run import probe


def main(weights: str, out_dir: str) -> None:
    x, y = probe()
    model = models.compiled(models.functional())
    model.load_weights(weights)
    logger = vc.RepresentationLogger(x, [vc.TensorBoardWriter(out_dir)], batch_size=24)
    model.fit(x, y, epochs=0, verbose=0, callbacks=[logger])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
