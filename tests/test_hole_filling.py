"""SAM 2's small-hole filling on machines without its CUDA extension (as here)."""

from __future__ import annotations

import warnings

import torch

from napari_sam2_track.sam2_backend import build_model
from napari_sam2_track.sam2_backend.hole_filling import connected_components, hole_area


def test_components_are_eight_connected_and_carry_their_area():
    mask = torch.zeros(2, 1, 6, 6, dtype=torch.bool)
    mask[0, 0, 1, 1] = mask[0, 0, 2, 2] = True  # touching at a corner: one component
    mask[0, 0, 4, 3:6] = True
    labels, areas = connected_components(mask)
    assert labels.shape == areas.shape == mask.shape
    assert labels.dtype == areas.dtype == torch.int32
    assert labels[0, 0, 1, 1] == labels[0, 0, 2, 2] != labels[0, 0, 4, 4]
    assert areas[0, 0, 1, 1] == areas[0, 0, 2, 2] == 2
    assert areas[0, 0, 4, 3] == areas[0, 0, 4, 5] == 3
    assert not labels[~mask].any() and not areas[~mask].any()
    assert not labels[1].any()  # an empty mask has no components


def test_the_hole_size_follows_the_frame_size():
    assert hole_area(1024) == 8  # SAM 2's own
    assert hole_area(512) == 2
    assert hole_area(128) == 0


def test_sam2_fills_small_holes_without_its_cuda_extension():
    assert build_model(random_weights=True, device="cpu").predictor.fill_hole_area == 8
    small_model = build_model(image_size=128, random_weights=True, device="cpu")
    assert small_model.predictor.fill_hole_area == 0
    from sam2.utils.misc import fill_holes_in_mask_scores

    scores = torch.full((1, 1, 32, 32), -4.0)
    scores[0, 0, 4:28, 4:28] = 4.0
    scores[0, 0, 10:12, 10:12] = -4.0  # a hole of 4 pixels
    scores[0, 0, 20:23, 20:23] = -4.0  # one of 9
    with warnings.catch_warnings(), small_model.calls():
        warnings.simplefilter("error")  # sam2 warns when it skips the step
        filled = fill_holes_in_mask_scores(scores, 8)
    assert torch.all(filled[0, 0, 10:12, 10:12] == 0.1)
    unchanged = torch.ones_like(scores, dtype=torch.bool)
    unchanged[0, 0, 10:12, 10:12] = False
    assert torch.equal(filled[unchanged], scores[unchanged])
