"""What gradient ascent moves and how the model sees it: pixels, or a Fourier spectrum scaled by
1/frequency with ImageNet's colour correlation (Lucid's ``fft_image`` and ``to_valid_rgb``), and
the random transforms of each step (Lucid's ``standard_transforms``, as one bilinear resampling).

Everything is keras.ops, so the same code runs on TensorFlow, JAX and PyTorch; random draws are
numpy's, made from the seed before the compiled loop, so a seed gives the same pattern each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops

__all__ = [
    "COLOR_CORRELATION_SVD_SQRT",
    "FourierImage",
    "PixelImage",
    "affine_map",
    "resample",
    "roll",
    "standard_transforms",
]

# Lucid's optvis/param/color.py: the square root of ImageNet's RGB colour correlation.
COLOR_CORRELATION_SVD_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
_COLOR_MIX = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))
_FOURIER_MAGIC = 4.0  # Lucid divides the image by 4 before the sigmoid
ADAM = (0.9, 0.999, 1e-8)  # beta1, beta2, epsilon


class PixelImage:
    """The pixels themselves: normalized gradient steps, an optional 3x3 blur, clipped."""

    def __init__(
        self, value_range: tuple[float, float], step_size: float, blur: float, channels: int
    ) -> None:
        self.low, self.high = value_range
        self.step = step_size * (self.high - self.low)
        self.kernel = _gaussian_kernel(blur, channels) if blur else None

    def start(self, rng: np.random.Generator, shape: Sequence[int], noise: float) -> np.ndarray:
        """Grey with uniform noise ``noise`` times the range wide: float ``(N, H, W, C)``."""
        middle, span = (self.low + self.high) / 2, self.high - self.low
        return middle + rng.uniform(-0.5, 0.5, tuple(shape)) * noise * span

    def render(self, params: Any) -> Any:
        """The images ``(N, H, W, C)``: the parameters themselves."""
        return params

    def update(self, params: Any, grads: Any, moments: tuple[Any, Any], i: Any) -> tuple:
        """One step up the gradient normalized to unit RMS per image, blurred and clipped."""
        rms = ops.sqrt(ops.mean(ops.square(grads), axis=(1, 2, 3), keepdims=True))
        params = params + self.step * grads / (rms + 1e-12)
        if self.kernel is not None:
            params = _apply_blur(params, self.kernel)
        return ops.clip(params, self.low, self.high), moments


class FourierImage:
    """A spectrum ``(N, 2, C, H, W//2+1)`` (real, imaginary), scaled by 1/frequency**decay_power
    (the lowest frequency counted as 1/side, as Lucid's ``fft_image``), through an
    orthonormal inverse real 2-D DFT, colour-mixed, then a sigmoid into the value range; Adam."""

    def __init__(
        self,
        image_shape: Sequence[int],
        value_range: tuple[float, float],
        learning_rate: float,
        decorrelate: bool,
        decay_power: float = 1.0,
    ) -> None:
        height, width, channels = image_shape
        self.low, self.high = value_range
        self.learning_rate = learning_rate
        self.mix = _COLOR_MIX.T if decorrelate and channels == 3 else None
        freqs = np.sqrt(np.fft.fftfreq(height)[:, None] ** 2 + np.fft.rfftfreq(width)[None] ** 2)
        lowest = 1.0 / max(height, width)
        self.scale = (np.maximum(freqs, lowest) ** -decay_power).astype(np.float32)
        self.rows, self.cols = _inverse_dft_matrices(height, width)

    def start(self, rng: np.random.Generator, shape: Sequence[int], noise: float) -> np.ndarray:
        """Gaussian spectrum of standard deviation ``noise / 10`` (Lucid's 0.01 at the default)."""
        count, height, width, channels = shape
        spectrum = (count, 2, channels, height, width // 2 + 1)
        return rng.standard_normal(spectrum) * noise / 10

    def render(self, params: Any) -> Any:
        """The images ``(N, H, W, C)`` in the value range."""
        spectrum = params * ops.convert_to_tensor(self.scale)  # numpy on the right fails on torch
        cos_rows, sin_rows = self.rows
        real, imag = spectrum[:, 0], spectrum[:, 1]
        # Along H a complex inverse DFT, along W an inverse real DFT: x = Re(Y · e^{+iωw}).
        y_real = ops.einsum("yk,nckx->ncyx", cos_rows, real) - ops.einsum(
            "yk,nckx->ncyx", sin_rows, imag
        )
        y_imag = ops.einsum("yk,nckx->ncyx", sin_rows, real) + ops.einsum(
            "yk,nckx->ncyx", cos_rows, imag
        )
        cos_cols, sin_cols = self.cols
        image = ops.einsum("ncyk,kx->nyxc", y_real, cos_cols) - ops.einsum(
            "ncyk,kx->nyxc", y_imag, sin_cols
        )
        image = image / _FOURIER_MAGIC
        if self.mix is not None:
            image = ops.matmul(image, self.mix)
        return self.low + (self.high - self.low) * ops.sigmoid(image)

    def update(self, params: Any, grads: Any, moments: tuple[Any, Any], i: Any) -> tuple:
        """One Adam step up the gradient."""
        beta1, beta2, epsilon = ADAM
        first, second = moments
        first = beta1 * first + (1 - beta1) * grads
        second = beta2 * second + (1 - beta2) * ops.square(grads)
        t = ops.cast(i + 1, "float32")
        corrected = first / (1 - ops.power(beta1, t))
        size = ops.sqrt(second / (1 - ops.power(beta2, t)))
        params = params + self.learning_rate * corrected / (size + epsilon)
        return params, (first, second)


def _inverse_dft_matrices(height: int, width: int) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """The cos/sin matrices of an orthonormal ``irfft2`` (numpy's ``norm="ortho"``) written as
    matmuls: the same gradient on every backend, and cheap beside the model at these sizes."""
    rows = 2 * np.pi * np.outer(np.arange(height), np.arange(height)) / height
    kx = np.arange(width // 2 + 1)
    weight = np.where((kx == 0) | (2 * kx == width), 1.0, 2.0)[:, None]  # the halves folded
    cols = 2 * np.pi * np.outer(kx, np.arange(width)) / width
    norm = 1.0 / np.sqrt(height * width)
    as_f32 = lambda a: ops.convert_to_tensor(a.astype(np.float32))  # noqa: E731
    return (
        (as_f32(np.cos(rows)), as_f32(np.sin(rows))),
        (as_f32(weight * np.cos(cols) * norm), as_f32(weight * np.sin(cols) * norm)),
    )


def standard_transforms(
    rng: np.random.Generator, steps: int, size: Sequence[int], shift: int | None = None
) -> np.ndarray:
    """``(steps, 6)`` affine maps from an output pixel to where it samples the input, one per
    step (the same for every image of the batch), as Lucid's ``standard_transforms``: jitter by
    up to ``shift`` px (default ±8, at most an eighth of the side), scale 0.9-1.1 in 0.02 steps,
    rotate -10°..10° (0° five times more likely); outside the image: grey, as Lucid's padding."""
    height, width = size[:2]
    shift = min(8, max(1, min(height, width) // 8)) if shift is None else shift
    scales = rng.choice(1 + (np.arange(11) - 5) / 50, steps)
    angles = np.deg2rad(rng.choice(np.array(list(range(-10, 11)) + [0] * 5), steps))
    shifts = rng.integers(-shift, shift + 1, size=(steps, 2))
    return np.stack(
        [affine_map(size, s, a, t) for s, a, t in zip(scales, angles, shifts, strict=True)]
    ).astype(np.float32)


def affine_map(size: Sequence[int], scale: float, angle: float, shift: Sequence[float]) -> list:
    """The 6 numbers ``(a, b, c, d, e, f)``: output ``(y, x)`` samples the input at
    ``(a·y + b·x + c, d·y + e·x + f)``; the content scaled by ``scale`` and rotated by ``angle``
    about the centre, then moved by ``shift`` ``(dy, dx)`` pixels."""
    cy, cx = (size[0] - 1) / 2, (size[1] - 1) / 2
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    dy, dx = float(shift[0]), float(shift[1])
    # inverse of: out = R·s·(in - centre) + centre + shift
    return [
        cos,
        sin,
        cy - cos * (cy + dy) - sin * (cx + dx),
        -sin,
        cos,
        cx + sin * (cy + dy) - cos * (cx + dx),
    ]


def resample(images: Any, transform: Any, fill: float) -> Any:
    """``images`` ``(N, H, W, C)`` resampled bilinearly through ``transform`` ``(6,)`` (see
    :func:`affine_map`), ``fill`` outside; gathers, so it is differentiable on every backend
    (``keras.ops.image.affine_transform`` has no image gradient on TensorFlow)."""
    _, height, width, channels = images.shape
    grid_y, grid_x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    grid_y = ops.convert_to_tensor(grid_y.reshape(-1).astype(np.float32))
    grid_x = ops.convert_to_tensor(grid_x.reshape(-1).astype(np.float32))
    src_y = transform[0] * grid_y + transform[1] * grid_x + transform[2]
    src_x = transform[3] * grid_y + transform[4] * grid_x + transform[5]
    y0, x0 = ops.floor(src_y), ops.floor(src_x)
    flat = ops.reshape(images - fill, (-1, height * width, channels))
    out = 0.0
    for dy in (0, 1):
        for dx in (0, 1):
            y, x = y0 + dy, x0 + dx
            weight = (1 - ops.abs(src_y - y)) * (1 - ops.abs(src_x - x))
            inside = (y >= 0) & (y <= height - 1) & (x >= 0) & (x <= width - 1)
            weight = ops.where(inside, weight, 0.0)
            index = ops.cast(
                ops.clip(y, 0, height - 1) * width + ops.clip(x, 0, width - 1), "int32"
            )
            out = out + ops.take(flat, index, axis=1) * weight[None, :, None]
    return ops.reshape(out, (-1, height, width, channels)) + fill


def roll(images: Any, shift: Any) -> Any:
    """``images`` ``(N, H, W, C)`` rolled by ``shift`` ``(2,)`` pixels along H and W, as gathers
    (so the shift may be a tensor on every backend)."""
    for axis in (1, 2):
        size = ops.shape(images)[axis]
        index = (ops.arange(size, dtype="int32") - shift[axis - 1]) % size
        images = ops.take(images, index, axis=axis)
    return images


def _gaussian_kernel(sigma: float, channels: int) -> np.ndarray:
    """A 3x3 Gaussian for a depthwise convolution: ``(3, 3, C, 1)``, weights summing to 1."""
    taps = np.exp(-(np.arange(-1, 2) ** 2) / (2 * sigma**2))
    kernel = np.outer(taps, taps) / np.outer(taps, taps).sum()
    return np.tile(kernel[:, :, None, None], (1, 1, channels, 1)).astype(np.float32)


def _apply_blur(images: Any, kernel: np.ndarray) -> Any:
    padded = ops.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
    return ops.depthwise_conv(padded, kernel, strides=1, padding="valid")
