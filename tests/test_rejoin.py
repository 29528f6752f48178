"""The rule that says where a re-track has re-joined its previous track."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.prompts import PromptError
from napari_sam2_track.rejoin import (
    RejoinRule,
    RejoinWatch,
    frame_matches,
    last_blocked,
    mask_iou,
    rejoin_index,
)
from napari_sam2_track.results import ObjectMask


def square(x0: int, size: int = 10) -> ObjectMask:
    mask = np.zeros((40, 40), bool)
    mask[5 : 5 + size, x0 : x0 + size] = True
    return ObjectMask.from_mask(mask)


EMPTY = ObjectMask.from_mask(np.zeros((40, 40), bool))


def test_iou_of_masks_and_of_two_empty_ones():
    assert mask_iou(square(0), square(0)) == 1.0
    assert mask_iou(square(0), square(5)) == pytest.approx(50 / 150)
    assert mask_iou(square(0), EMPTY) == 0.0
    assert mask_iou(EMPTY, EMPTY) == 1.0  # absent before and after: the same track


def test_a_frame_matches_only_when_every_object_matches_a_previous_mask():
    new = {1: square(0), 2: square(20)}
    assert frame_matches({1: square(0), 2: square(20)}, new, 0.9)
    assert not frame_matches({1: square(0), 2: square(21)}, new, 0.9)  # IoU 0.82
    assert frame_matches({1: square(0), 2: square(21)}, new, 0.8)
    assert not frame_matches({1: square(0), 2: None}, new, 0.9)  # never tracked there
    assert not frame_matches({1: square(0)}, new, 0.9)
    assert not frame_matches({}, {}, 0.9)


@pytest.mark.parametrize(
    ("matches", "frames", "expected"),
    [
        ([True, True, True], 3, 2),
        ([False, True, True, False, True, True, True, True], 3, 6),
        ([True, True, False, True, True], 3, None),
        ([False, True], 1, 1),
        ([], 3, None),
    ],
)
def test_rejoin_index_is_where_enough_matches_in_a_row_end(matches, frames, expected):
    assert rejoin_index(matches, frames) == expected


def test_blocked_frames_are_found_in_the_pass_order():
    assert last_blocked([4, 5, 6, 7], {5}) == 1
    assert last_blocked([7, 6, 5, 4], {5, 7}) == 2
    assert last_blocked([4, 5, 6], {9}) == -1


def test_a_watch_counts_only_after_the_last_blocked_frame():
    watch = RejoinWatch(RejoinRule(frames=2), [3, 4, 5, 6, 7], blocked={4})
    same = {1: square(0)}
    said = [watch.rejoined(same, same) for _ in range(5)]
    assert said == [False, False, False, True, True]  # frames 5 and 6 match in a row


@pytest.mark.parametrize("rule", [{"iou": 0.0}, {"iou": 1.5}, {"frames": 0}])
def test_a_rule_that_can_never_or_always_hold_is_refused(rule):
    with pytest.raises(PromptError, match="re-join"):
        RejoinRule(**rule)
