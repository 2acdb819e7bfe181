"""A hand-set Conv2D in a real fit: the logged grid equals, pixel for pixel, the maps on paper."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import vizcallbacks as vc
from tests import handset, models
from tests.events import read_events

# frozen_edge_and_ramp on STEP, each 14x14 map normalized on its own and drawn in 'gray' (value
# v in [0, 1] → grey level round(255 v)), by hand: every row of a map is the same.
EDGE_ROW = [0] * 6 + [255, 255] + [0] * 6  # 3 at columns 6, 7 → 1; 0 elsewhere
RAMP_ROW = [0] * 6 + [85, 170] + [255] * 6  # 0, 3, 6, 9 → 0, 1/3, 2/3, 1
SCALE = 3  # 14-pixel maps are enlarged 3x, to 42 pixels (at least 32)
SEPARATOR = 200  # the grey line between the two tiles


def _tile(row: list[int]) -> np.ndarray:
    return np.repeat(np.repeat(np.array([row] * 14, np.uint8), SCALE, 0), SCALE, 1)


def test_logged_grid_is_the_maps_on_paper(digits, tmp_path: Path) -> None:
    x, y = digits
    model = models.compiled(handset.frozen_edge_and_ramp())
    writers = [vc.TensorBoardWriter(tmp_path)]
    logger = vc.ActivationLogger(handset.STEP, writers, layers=["edges"], cmap="gray")
    model.fit(x[:64], y[:64], epochs=2, batch_size=32, verbose=0, callbacks=[logger])

    expected = np.concatenate(
        [_tile(EDGE_ROW), np.full((42, 1), SEPARATOR, np.uint8), _tile(RAMP_ROW)], axis=1
    )
    grids = read_events(tmp_path)["activations/edges"]
    assert sorted(grids) == [0, 1, 2]
    for grid in grids.values():  # the conv is frozen: every step shows the same maps
        assert grid.shape == (42, 85, 3)
        for channel in range(3):
            np.testing.assert_array_equal(grid[..., channel], expected)
