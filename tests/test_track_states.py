"""Each object's state on each frame, read from results and prompts (no viewer)."""

from __future__ import annotations

import numpy as np

from napari_sam2_track.prompts import FramePrompt, PromptSet
from napari_sam2_track.results import ObjectMask, TrackResults
from napari_sam2_track.track_states import FrameState, TrackStates, binned_states

N_FRAMES, H, W = 12, 8, 10


def square(on: bool = True) -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[2:5, 3:7] = on
    return mask


def sample() -> tuple[TrackResults, PromptSet]:
    """Object 1 prompted on 0, tracked 0-7 with an empty mask on 5 and a low score on 6;
    object 2 tracked on 3-4 only."""
    results, prompts = TrackResults(N_FRAMES, H, W), PromptSet()
    prompts.set(0, 1, FramePrompt(points=((4.0, 3.0),), labels=(1,)))
    for frame in range(8):
        results.set(frame, 1, square(frame != 5), score=0.2 if frame == 6 else 0.9)
    for frame in (3, 4):
        results.set(frame, 2, square(), score=0.8)
    return results, prompts


def test_a_build_reads_every_state_from_results_and_prompts():
    results, prompts = sample()
    states = TrackStates.build(results, [k for k, _ in prompts.items()], [1, 2, 3])
    expected = [FrameState.PROMPTED] + [FrameState.TRACKED] * 7 + [FrameState.NOT_TRACKED] * 4
    expected[5], expected[6] = FrameState.NO_MASK, FrameState.LOW_SCORE
    np.testing.assert_array_equal(states.states(1), expected)
    assert states.states(2).tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert not states.states(3).any()  # registered, never tracked
    assert states.frames_with_mask(1) == 7 and states.prompted_frames(1) == 1
    assert states.score(6, 1) == np.float32(0.2) and states.score(9, 1) is None


def test_updates_follow_changed_frames_and_the_threshold_needs_no_reread():
    results, prompts = sample()
    states = TrackStates.build(results, [], [1, 2])
    prompts.set(9, 2, FramePrompt(points=((1.0, 1.0),), labels=(1,)))
    results.set(9, 2, square(), score=0.95)
    results.discard(3, 2)
    states.update(results, prompts, [3, 9])
    assert states.states(2).tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0, 5, 0, 0]
    states.min_score = 0.85
    assert states.states(2)[4] == FrameState.LOW_SCORE
    assert states.states(1)[0] == FrameState.TRACKED  # prompt 0 was not read in yet


def test_a_painted_frame_shows_until_it_is_tracked_again():
    results, prompts = sample()
    states = TrackStates.build(results, [], [1])
    results.set(2, 1, ObjectMask.from_mask(square(False) | np.eye(H, W, dtype=bool), painted=True))
    states.update(results, prompts, [2])
    assert states.states(1)[2] == FrameState.PAINTED
    results.set(2, 1, ObjectMask.from_mask(square(), 0.9))  # SAM 2 tracks it again
    states.update(results, prompts, [2])
    assert states.states(1)[2] == FrameState.TRACKED


def test_deleted_objects_lose_their_rows():
    results, _ = sample()
    states = TrackStates.build(results, [], [1, 2])
    states.keep_objects([2, 4])
    assert states.object_ids == [2, 4]


def test_binning_keeps_the_strongest_state_of_each_pixel_column():
    states = np.zeros((2, 10_000), np.uint8)
    states[0, 4_321] = FrameState.PROMPTED
    states[1, :5_000] = FrameState.TRACKED
    binned = binned_states(states, 100)
    assert binned.shape == (2, 100)
    assert binned[0].tolist().count(FrameState.PROMPTED) == 1 and binned[0, 43] == 5
    assert (binned[1, :50] == 1).all() and (binned[1, 50:] == 0).all()
    # Wider than the video: each frame spans several columns.
    wide = binned_states(np.array([[0, 1, 4]], np.uint8), 7)
    assert wide.tolist() == [[0, 0, 0, 1, 1, 4, 4]]


def test_the_next_problem_is_a_gap_an_empty_mask_or_a_low_score_within_the_track():
    results, prompts = sample()  # object 1: tracked 0-7, empty on 5, low score on 6
    results.set(9, 1, square(), score=0.9)  # and on 9, so 8 is a gap inside the track
    states = TrackStates.build(results, [key for key, _ in prompts.items()], [1, 2, 3])
    assert [states.next_problem(1, f) for f in (0, 5, 6, 8, 9)] == [5, 6, 8, None, None]
    assert [states.next_problem(1, f, -1) for f in (11, 9, 8, 6, 5)] == [8, 8, 6, 5, None]
    assert states.next_problem(2, 0) is None and states.next_problem(3, 0) is None
    states.min_score = 0.85  # object 2's 0.8 is low now
    assert states.next_problem(2, 0) == 3 and states.next_problem(2, 3) == 4
    assert states.next_problem(2, 20, -1) == 4
    # Painting a low-score frame fixes it; painting a mask away leaves no mask there.
    results.set(6, 1, ObjectMask.from_mask(square(), 0.2, painted=True))
    results.set(3, 2, ObjectMask.from_mask(square(False), 0.8, painted=True))
    states.update(results, prompts, [3, 6])
    assert states.next_problem(1, 5) == 8 and states.next_problem(2, 0) == 3
