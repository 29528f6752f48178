"""Boxes that leave out specks: small pieces of a mask far from its main body."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.boxes import mask_to_box
from napari_sam2_track.errors import UserError
from napari_sam2_track.results import ObjectMask, TrackResults
from napari_sam2_track.specks import KEEP_SPECKS, SpeckRule, box_without_specks, remove_specks


def square_with(*pieces: tuple[int, int, int]) -> np.ndarray:
    """A 20x20 square at rows/columns 40-59 of a 120x160 frame, and square pieces
    (row, column, side)."""
    mask = np.zeros((120, 160), bool)
    mask[40:60, 40:60] = True
    for row, col, side in pieces:
        mask[row : row + side, col : col + side] = True
    return mask


SQUARE = (40, 40, 20, 20)


@pytest.mark.parametrize(
    ("pieces", "box"),
    [
        ([], SQUARE),
        ([(5, 150, 2)], SQUARE),  # one far speck
        ([(5, 150, 2), (110, 2, 3), (100, 100, 1)], SQUARE),  # several
        ([(61, 45, 3)], (40, 40, 20, 24)),  # a small piece close by belongs to the object
        ([(40, 120, 15)], (40, 40, 95, 20)),  # a large far piece is part of the object
    ],
)
def test_a_box_leaves_out_small_far_pieces_only(pieces, box):
    assert box_without_specks(square_with(*pieces)) == box


def test_the_thresholds_are_settable():
    mask = square_with((5, 150, 2))
    assert box_without_specks(mask, KEEP_SPECKS) == mask_to_box(mask)  # every pixel
    assert box_without_specks(mask, SpeckRule(area_share=0.005)) == mask_to_box(mask)
    assert box_without_specks(square_with((63, 45, 3)), SpeckRule(gap_share=0.5)) == (
        40,
        40,
        20,
        26,
    )
    assert box_without_specks(mask, SpeckRule(gap_share=10.0)) == mask_to_box(mask)
    with pytest.raises(UserError, match="area share"):
        SpeckRule(area_share=1.5)


def test_removing_specks_takes_out_those_pieces_and_nothing_else():
    with_specks = square_with((5, 150, 2), (61, 45, 3))
    cleaned = remove_specks(with_specks)
    np.testing.assert_array_equal(cleaned, square_with((61, 45, 3)))
    single = square_with()
    assert remove_specks(single) is single  # one piece: nothing to take out
    np.testing.assert_array_equal(remove_specks(np.zeros((4, 4), bool)), np.zeros((4, 4), bool))


def test_an_entry_keeps_the_mask_as_given_and_its_box_without_specks():
    mask = square_with((5, 150, 2))
    entry = ObjectMask.from_mask(mask)
    np.testing.assert_array_equal(entry.mask, mask)
    assert entry.box == SQUARE and entry.area == 404
    results = TrackResults(1, 120, 160)
    results.set(0, 1, mask)  # a painted mask, say
    assert results.boxes(0) == {1: SQUARE}
    results.specks = KEEP_SPECKS
    results.set(0, 1, mask)
    assert results.boxes(0) == {1: mask_to_box(mask)}
