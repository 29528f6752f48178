"""SAM 2's small-hole filling, also where its optional CUDA extension is missing.

SAM 2's video predictor fills holes of up to 8 pixels in its 256x256 mask logits (at
1024-pixel frames), taking connected components from its CUDA extension. Without the
extension (on a CPU, on Apple silicon, or with sam2 installed without it) sam2 warns and
skips the step, so the same video and clicks would give other masks than on a GPU.
Here SciPy computes the same components, so masks match on every device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SAM2_HOLE_AREA = 8  # what sam2.build_sam.build_sam2_video_predictor sets
SAM2_IMAGE_SIZE = 1024
_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def hole_area(image_size: int) -> int:
    """SAM 2's largest filled hole for a model run at ``image_size``: its 8 mask pixels at
    1024-pixel frames, scaled so that a hole covers the same share of the frame (0, so no
    filling, below about 370 pixels)."""
    return round(SAM2_HOLE_AREA * (image_size / SAM2_IMAGE_SIZE) ** 2)


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What ``sam2.utils.misc.get_connected_components`` returns, without CUDA: for
    (N, 1, H, W) binary masks, each pixel's component label and the component's area
    (8-connectivity; 0 for both on background pixels)."""
    import torch
    from scipy import ndimage

    binary = mask.detach().to("cpu", torch.bool).numpy()
    labels = np.zeros(binary.shape, dtype=np.int32)
    areas = np.zeros(binary.shape, dtype=np.int32)
    for i in range(binary.shape[0]):
        components, n = ndimage.label(binary[i, 0], structure=_EIGHT_NEIGHBOURS)
        labels[i, 0] = components
        if n:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            areas[i, 0] = sizes[components]
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


def has_sam2_extension() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("sam2._C") is not None
    except ImportError:
        return False
