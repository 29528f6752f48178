"""Measuring masks against the synthetic videos' ground truth, for training and evaluation.

What a person would do given the exact truth: click an object's middle, or the middle of
a mask's larger error. Used by the scripts here and by the tests of the bundled model.
"""

from __future__ import annotations

import numpy as np


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    union = np.logical_or(pred, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, truth).sum() / union)


def border_distance(mask: np.ndarray) -> np.ndarray:
    """Each pixel's Euclidean distance to the nearest pixel outside ``mask`` (beyond the
    image's edge counts as outside); 0 outside the mask.

    Computed on the mask's bounding box alone, with a ring of outside around it: every
    pixel beyond the box is outside, and none is nearer than the ring, so the result is
    exact and costs what the object's size costs, not the frame's.
    """
    from scipy import ndimage

    depth = np.zeros(mask.shape, dtype=np.float64)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size:
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        depth[box] = ndimage.distance_transform_edt(np.pad(mask[box], 1))[1:-1, 1:-1]
    return depth


def deepest_point(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the pixel of ``mask`` farthest from its border: where a person clicks."""
    depth = border_distance(mask)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return float(x), float(y)


def correction_click(truth: np.ndarray, pred: np.ndarray) -> tuple[tuple[float, float], int]:
    """A person's fix for ``pred``: ((x, y), label) in the middle of the larger error,
    label 1 (on the object) on a miss, 0 on a false hit."""
    missed, extra = truth & ~pred, pred & ~truth
    positive = missed.sum() >= extra.sum()
    return deepest_point(missed if positive else extra), int(positive)
