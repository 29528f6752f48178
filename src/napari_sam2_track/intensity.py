"""How raw pixel values become the 8-bit RGB that napari shows and SAM 2 reads.

One policy for frame folders and arrays alike: 8-bit data keeps its values; any other
type (12-bit camera data in 16-bit containers, floats) is stretched between robust
percentiles of a few frames sampled across the video, so it looks like the photos SAM 2
was trained on rather than nearly black.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import UserError

SAMPLE_FRAMES = 16
PERCENTILES = (0.1, 99.9)


class SourceError(UserError):
    """Image data that cannot be tracked; the message is one sentence for the user."""


def sample_indices(n_frames: int) -> list[int]:
    """The frames, spread evenly over the video, whose values set its range."""
    picks = np.linspace(0, n_frames - 1, min(n_frames, SAMPLE_FRAMES)).round().astype(int)
    return np.unique(picks).tolist()


@dataclass(frozen=True)
class IntensityRange:
    """Maps raw pixel values onto 0..1: ``(value - low) / (high - low)``, clipped."""

    low: float
    high: float

    @classmethod
    def of_dtype(cls, dtype: Any) -> IntensityRange | None:
        """The fixed range of 8-bit and boolean data; None where the data must be sampled."""
        dtype = np.dtype(dtype)
        if dtype == np.uint8:
            return cls(0.0, 255.0)
        if dtype == np.bool_:
            return cls(0.0, 1.0)
        return None

    @classmethod
    def for_source(cls, source: Any) -> IntensityRange:
        """The range of a (T, H, W[, C]) array-like, from its dtype or sampled frames."""
        fixed = cls.of_dtype(source.dtype)
        if fixed is not None:
            return fixed
        return cls.sampled(int(source.shape[0]), lambda i: source[i])

    @classmethod
    def sampled(cls, n_frames: int, read: Callable[[int], np.ndarray]) -> IntensityRange:
        """Robust percentiles of the frames :func:`sample_indices` picks, read by index."""
        return cls.of_frames(read(i) for i in sample_indices(n_frames))

    @classmethod
    def of_frames(cls, frames: Iterable[np.ndarray]) -> IntensityRange:
        values = np.concatenate(
            [np.asarray(colour_channels(f), dtype=np.float64).ravel() for f in frames]
        )
        values = values[np.isfinite(values)]
        if values.size == 0:
            return cls(0.0, 1.0)
        low, high = np.percentile(values, PERCENTILES)
        if high <= low:
            low, high = float(values.min()), float(values.max())
        return cls(float(low), float(high) if high > low else float(low) + 1.0)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        scaled = (np.asarray(frame, dtype=np.float32) - self.low) / (self.high - self.low)
        return np.clip(np.nan_to_num(scaled), 0.0, 1.0)


def colour_channels(image: np.ndarray) -> np.ndarray:
    """The image without its alpha channel, and greyscale as (H, W)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (2, 4):
        image = image[..., : image.shape[2] - 1]
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    return image


def as_uint8_rgb(image: np.ndarray, intensity: IntensityRange) -> np.ndarray:
    """A 2-D greyscale or RGB(A) image as (H, W, 3) uint8 through ``intensity``."""
    image = colour_channels(image)
    if not (image.dtype == np.uint8 and intensity == IntensityRange(0.0, 255.0)):
        image = np.round(intensity.apply(image) * 255.0).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise SourceError(f"an image of shape {image.shape} is neither greyscale nor RGB.")
    return image
