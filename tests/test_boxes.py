"""The one box convention and the conversions every writer makes from it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.boxes import box_edges, box_from_edges, mask_to_box, yolo_box
from napari_sam2_track.layers import box_corners, corners_to_box


@pytest.fixture
def mask() -> np.ndarray:
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True  # rows 1-2, columns 2, 3, 4
    return mask


def test_edges_cut_the_box_out_of_the_image(mask):
    box = mask_to_box(mask)
    x0, y0, x1, y1 = box_edges(box)
    assert (x0, y0, x1, y1) == (2, 1, 5, 3)
    assert mask[y0:y1, x0:x1].all() and mask[y0:y1, x0:x1].sum() == mask.sum()
    assert box_from_edges(x0, y0, x1, y1) == box


def test_yolo_takes_the_centre_and_size_as_fractions(mask):
    cx, cy, w, h = yolo_box(mask_to_box(mask), 8, 6)
    assert (cx, cy, w, h) == pytest.approx((3.5 / 8, 2 / 6, 3 / 8, 2 / 6))


def test_a_rectangle_off_the_pixel_grid_snaps_each_side_to_the_nearest_edge():
    box = (2, 1, 3, 2)
    rng = np.random.default_rng(0)
    for _ in range(50):
        corners = box_corners(7, box)
        corners[:, 1:] += rng.uniform(-0.45, 0.45, size=(4, 2))
        assert corners_to_box(corners) == box
