"""Tiling, normalization and colouring: exact pixels checked by hand, then properties."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vizcallbacks.render.colormap import BLACK, NONFINITE_COLOR, colorize
from vizcallbacks.render.tiling import (
    SEPARATOR_VALUE,
    grid_shape,
    mean_map_image,
    normalize_maps,
    shrink_maps,
    tile_filters,
    tile_images,
    tile_maps,
    tile_rgb_filters,
    upscale_factor,
)

GRAY = "gray"  # gray's table is the identity: value v in [0, 1] → round(255 v)


def test_normalize_each_map_on_its_own() -> None:
    maps = np.array([[[0.0, 2.0], [4.0, 8.0]], [[-1.0, -1.0], [1.0, 1.0]]])
    scaled, constant = normalize_maps(maps)
    np.testing.assert_allclose(scaled[0], [[0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(scaled[1], [[0, 0], [1, 1]])
    assert not constant.any()


def test_constant_and_nonfinite_maps() -> None:
    maps = np.array([[[3.0, 3.0], [3.0, 3.0]], [[np.nan, 1.0], [np.inf, 3.0]]])
    scaled, constant = normalize_maps(maps)
    assert constant.tolist() == [True, False]
    np.testing.assert_allclose(scaled[1, 0, 1], 0.0)
    np.testing.assert_allclose(scaled[1, 1, 1], 1.0)
    rgb = colorize(scaled, GRAY, blank=constant[:, None, None])
    assert (rgb[0] == BLACK).all()
    assert (rgb[1, 0, 0] == NONFINITE_COLOR).all() and (rgb[1, 1, 0] == NONFINITE_COLOR).all()
    assert rgb[1, 1, 1].tolist() == [255, 255, 255]


def test_tile_images_exact_layout() -> None:
    tiles = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (10, 20, 30)])
    grid = tile_images(tiles, pad=1)
    # 3 tiles → 2 rows x 2 cols of 2x2 with 1-pixel separators → 5x5; the 4th cell is black.
    assert grid.shape == (5, 5, 3)
    expected = np.array(
        [
            [10, 10, SEPARATOR_VALUE, 20, 20],
            [10, 10, SEPARATOR_VALUE, 20, 20],
            [SEPARATOR_VALUE] * 5,
            [30, 30, SEPARATOR_VALUE, 0, 0],
            [30, 30, SEPARATOR_VALUE, 0, 0],
        ]
    )
    np.testing.assert_array_equal(grid[..., 0], expected)


def test_mean_map_and_channel_cap() -> None:
    maps = np.arange(4 * 4 * 100, dtype=np.float32).reshape(4, 4, 100)
    grid = tile_maps(maps, max_channels=10, cmap=GRAY)
    rows, cols = grid_shape(10)
    assert (rows, cols) == (3, 4)
    assert grid.shape == (rows * 33 - 1, cols * 33 - 1, 3)
    mean = mean_map_image(maps, GRAY)
    assert mean.shape == (32, 32, 3)
    assert mean[0, 0, 0] == 0 and mean[-1, -1, 0] == 255


def test_filter_grid_rows_are_filters_columns_inputs() -> None:
    filters = np.zeros((5, 3, 3, 2), np.float32)
    filters[2, :, :, 1] = 1.0
    grid = tile_filters(filters, cmap=GRAY)
    tile = 3 * upscale_factor(3, 3) + 1
    assert grid.shape == (5 * tile - 1, 2 * tile - 1, 3)
    assert (grid[2 * tile : 3 * tile - 1, tile:, 0] == 255).all()
    assert (grid[2 * tile : 3 * tile - 1, : tile - 1, 0] == 0).all()
    rgb = tile_rgb_filters(np.ones((4, 3, 3, 3), np.float32) * [1.0, 0.0, 0.5])
    assert rgb.dtype == np.uint8 and rgb[0, 0].tolist() == [255, 0, 128]


def test_unknown_colormap_names_the_fix() -> None:
    with pytest.raises(ValueError, match=r"not a matplotlib colormap.*viridis"):
        tile_maps(np.zeros((2, 2, 1)), cmap="no-such-map")


@settings(max_examples=40, deadline=None)
@given(
    channels=st.integers(1, 1024),
    size=st.integers(1, 300),
    fill=st.sampled_from(["random", "constant", "nan", "inf", "mixed"]),
)
def test_tile_maps_properties(channels: int, size: int, fill: str) -> None:
    rng = np.random.default_rng(channels * 1000 + size)
    shape = (size, max(1, size // 3), channels)
    maps = {
        "random": lambda: rng.normal(size=shape),
        "constant": lambda: np.full(shape, 7.0),
        "nan": lambda: np.full(shape, np.nan),
        "inf": lambda: np.full(shape, np.inf),
        "mixed": lambda: np.where(rng.random(shape) < 0.1, np.nan, rng.normal(size=shape)),
    }[fill]().astype(np.float32)
    with np.errstate(all="raise"):
        grid = tile_maps(maps, max_channels=64, max_size=None)
        capped = tile_maps(maps, max_channels=64)
    assert max(capped.shape[:2]) <= 1024 and capped.dtype == np.uint8
    n = min(channels, 64)
    rows, cols = grid_shape(n)
    factor = upscale_factor(shape[0], shape[1])
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3
    assert grid.shape[:2] == (
        rows * (shape[0] * factor + 1) - 1,
        cols * (shape[1] * factor + 1) - 1,
    )
    if fill == "constant":
        assert (grid[: shape[0] * factor, : shape[1] * factor] == 0).all()


def test_large_grids_are_capped_by_block_means() -> None:
    # 64 maps of 200x200: an 8x8 grid of 1,607 px. Halving the maps (100x100) gives 807 px,
    # the first size within 1,024.
    maps = np.random.default_rng(0).random((200, 200, 64)).astype(np.float32)
    assert tile_maps(maps).shape == (807, 807, 3)
    assert tile_maps(maps, max_size=None).shape == (1607, 1607, 3)
    # Block means, by hand: [[0, 2], [4, 6]] averages to 3, [[1, 3], [5, 7]] to 4, ...
    block = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    np.testing.assert_array_equal(shrink_maps(block, 2)[0], [[2.5, 4.5], [10.5, 12.5]])
    # A 5-pixel side is padded with its border value before the 2x2 means.
    odd = np.arange(5, dtype=np.float32).reshape(1, 1, 5).repeat(5, axis=1)
    np.testing.assert_array_equal(shrink_maps(odd, 2)[0, 0], [0.5, 2.5, 4.0])


@pytest.mark.parametrize("channels", [None, 1, 2, 3, 4])
def test_encode_png_round_trips_every_layout_exactly(channels: int | None) -> None:
    from PIL import Image as PILImage

    from vizcallbacks.render.png import encode_png

    rng = np.random.default_rng(channels or 0)
    shape = (37, 53) if channels is None else (37, 53, channels)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    pixels[10:20] = pixels[10]  # repeated rows and flat blocks, as in our grids
    with PILImage.open(io.BytesIO(encode_png(pixels))) as picture:
        picture.load()
        back = np.asarray(picture)
        assert picture.mode == {None: "L", 1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    np.testing.assert_array_equal(back.reshape(pixels.shape), pixels)


@pytest.mark.parametrize(
    "pixels", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 5), np.uint8), np.zeros((0, 4))]
)
def test_encode_png_refuses_what_is_not_a_uint8_picture(pixels: np.ndarray) -> None:
    from vizcallbacks.render.png import encode_png

    with pytest.raises(ValueError, match="encode_png needs"):
        encode_png(pixels)


@pytest.mark.parametrize(
    ("kernel", "factor"),
    [(3, 5), (1, 15), (11, 1)],  # 64 rows of kernels in 1,024 pixels
)
def test_filter_grids_enlarge_kernels_only_as_far_as_the_size_cap(kernel: int, factor: int) -> None:
    filters = np.random.default_rng(kernel).random((64, kernel, kernel, 32), dtype=np.float32)
    capped = tile_filters(filters)
    side = kernel * factor + 1
    assert capped.shape == (64 * side - 1, 16 * side - 1, 3) and max(capped.shape) <= 1024
    full = tile_filters(filters, max_size=None)
    enlarged = -(-32 // kernel)  # towards 32 pixels, as small maps
    assert full.shape == (64 * (kernel * enlarged + 1) - 1, 16 * (kernel * enlarged + 1) - 1, 3)
    # Pixel repetition only: the first tile holds the same kernel values in both grids.
    np.testing.assert_array_equal(
        capped[: kernel * factor : factor, : kernel * factor : factor],
        full[: kernel * enlarged : enlarged, : kernel * enlarged : enlarged],
    )


def test_filter_grid_size_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_size"):
        tile_filters(np.zeros((2, 3, 3, 1), np.float32), max_size=0)
