"""Frames as SAM 2 wants them, made one at a time.

SAM 2's ``init_state`` loads the whole video up front as float32 at image_size²
(12 MiB a frame at 1024: 18.5 GiB for 1,581 frames). Its inference state only ever
calls ``len()`` and ``[i]`` on ``state["images"]``, so :class:`ModelFrames` produces
each normalised frame when SAM 2 asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import UserError

# SAM 2 was trained on ImageNet-normalised RGB (sam2.utils.misc.load_video_frames).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SAMPLE_FRAMES = 16


class SourceError(UserError):
    """Image data that cannot be tracked; the message is one sentence for the user."""


def source_geometry(source: Any) -> tuple[int, int, int]:
    """(frames, height, width) of a (T, H, W) or (T, H, W, C) array-like."""
    shape = tuple(int(s) for s in source.shape)
    if len(shape) == 3 or (len(shape) == 4 and shape[3] in (1, 3, 4)):
        return shape[0], shape[1], shape[2]
    raise SourceError(
        f"image data of shape {shape} is not a video: expected (frames, height, width) "
        "greyscale or (frames, height, width, 3) RGB."
    )


@dataclass(frozen=True)
class IntensityRange:
    """Maps raw pixel values onto 0..1: ``(value - low) / (high - low)``, clipped."""

    low: float
    high: float

    @classmethod
    def for_source(cls, source: Any) -> IntensityRange:
        """8-bit data keeps its range; anything else is stretched between robust
        percentiles of a few frames, so 12-bit cameras and float images look like
        the photos SAM 2 was trained on."""
        dtype = np.dtype(source.dtype)
        if dtype == np.uint8:
            return cls(0.0, 255.0)
        if dtype == np.bool_:
            return cls(0.0, 1.0)
        n = int(source.shape[0])
        picks = np.unique(np.linspace(0, n - 1, min(n, _SAMPLE_FRAMES)).round().astype(int))
        sample = np.concatenate(
            [np.asarray(source[int(i)], dtype=np.float64).ravel() for i in picks]
        )
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            return cls(0.0, 1.0)
        low, high = np.percentile(sample, [0.1, 99.9])
        if high <= low:
            low, high = float(sample.min()), float(sample.max())
        return cls(float(low), float(high) if high > low else float(low) + 1.0)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        scaled = (np.asarray(frame, dtype=np.float32) - self.low) / (self.high - self.low)
        return np.clip(np.nan_to_num(scaled), 0.0, 1.0)


def as_rgb01(frame: np.ndarray, intensity: IntensityRange) -> np.ndarray:
    """One frame as (H, W, 3) float32 in 0..1."""
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 4:
        frame = frame[..., :3]
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    frame = intensity.apply(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    return frame


class ModelFrames:
    """``state["images"]`` for SAM 2: frame i as a normalised (3, S, S) float tensor."""

    def __init__(self, source: Any, image_size: int, intensity: IntensityRange | None = None):
        self.source = source
        self.n_frames, self.height, self.width = source_geometry(source)
        self.image_size = image_size
        self.intensity = intensity or IntensityRange.for_source(source)
        self.frames_made = 0  # how many frames SAM 2 asked for (for tests and benchmarks)

    def __len__(self) -> int:
        return self.n_frames

    def __getitem__(self, index: int):
        import torch
        import torch.nn.functional as F

        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame {index} is out of range: the video has {self.n_frames}.")
        rgb = as_rgb01(self.source[int(index)], self.intensity)
        image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
        size = (self.image_size, self.image_size)
        image = F.interpolate(
            image, size=size, mode="bilinear", antialias=True, align_corners=False
        )[0]
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        self.frames_made += 1
        return (image - mean) / std
