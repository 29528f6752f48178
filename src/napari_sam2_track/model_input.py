"""Frames as SAM 2 wants them, made one at a time.

SAM 2's ``init_state`` loads the whole video up front as float32 at image_size²
(12 MiB a frame at 1024: 18.5 GiB for 1,581 frames). Its inference state only ever
calls ``len()`` and ``[i]`` on ``state["images"]``, so :class:`ModelFrames` produces
each normalised frame when SAM 2 asks for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .intensity import IntensityRange, SourceError, as_uint8_rgb

# SAM 2 was trained on ImageNet-normalised RGB (sam2.utils.misc.load_video_frames).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = ["IntensityRange", "ModelFrames", "SourceError", "source_geometry"]


def source_geometry(source: Any) -> tuple[int, int, int]:
    """(frames, height, width) of a (T, H, W) or (T, H, W, C) array-like."""
    shape = tuple(int(s) for s in source.shape)
    if len(shape) == 3 or (len(shape) == 4 and shape[3] in (1, 3, 4)):
        return shape[0], shape[1], shape[2]
    raise SourceError(
        f"image data of shape {shape} is not a video: expected (frames, height, width) "
        "greyscale or (frames, height, width, 3) RGB."
    )


class ModelFrames:
    """``state["images"]`` for SAM 2: frame i as a normalised (3, S, S) float tensor.

    Each frame first becomes the 8-bit RGB that a frame folder of the same data would
    show (:mod:`~napari_sam2_track.intensity`), so both reach SAM 2 alike.
    """

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
        rgb = as_uint8_rgb(self.source[int(index)], self.intensity)
        image = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        size = (self.image_size, self.image_size)
        image = F.interpolate(
            image, size=size, mode="bilinear", antialias=True, align_corners=False
        )[0]
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        self.frames_made += 1
        return (image - mean) / std
