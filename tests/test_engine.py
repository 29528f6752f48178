"""The tracking engine on the real SAM 2 architecture with random weights.

Random weights make meaningless masks, so these tests pin down what they cannot fake:
which prompts reach SAM 2's state, which frames each propagation produces and in what
order, stopping, correction semantics, object bookkeeping and memory bounds.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
import torch

from napari_sam2_track.engine import SessionBusyError, TrackingSession
from napari_sam2_track.prompts import PromptError
from napari_sam2_track.rejoin import RejoinRule, mask_iou
from napari_sam2_track.synthetic import make_synthetic_video

from conftest import RANDOM_MODEL_SIZE

IMAGE_SIZE = RANDOM_MODEL_SIZE
N_FRAMES = 10


@pytest.fixture
def model(random_model):
    return random_model


@pytest.fixture(scope="module")
def video():
    return make_synthetic_video(n_frames=N_FRAMES, height=120, width=160, n_objects=2)


@pytest.fixture
def session(model, video):
    return TrackingSession(video.frames, model)


def _rles(session, frames, obj_id=1):
    return {f: session.results.get(f, obj_id).rle["counts"] for f in frames}


def test_points_reach_sam2_state_in_xy_order_on_their_frame(session):
    session.set_prompt(3, 1, points=[(150.0, 20.0), (10.0, 110.0)], labels=[1, 0])
    assert session.tracker.prompted_frames(1) == {"points": [3], "mask": []}
    coords, labels = session.tracker.point_prompt(3, 1)
    scale = np.array([IMAGE_SIZE / 160, IMAGE_SIZE / 120])
    np.testing.assert_allclose(coords, np.array([[150.0, 20.0], [10.0, 110.0]]) * scale)
    assert labels.tolist() == [1, 0]


def test_replacing_a_frames_points_replaces_them_in_sam2(session):
    session.set_prompt(2, 1, points=[(10, 10), (20, 20)], labels=[1, 1])
    session.set_prompt(2, 1, points=[(30, 40)], labels=[0])
    assert session.tracker.point_prompt(2, 1)[1].tolist() == [0]
    assert session.prompts.get(2, 1).points.tolist() == [[30, 40]]


def test_box_prompt_goes_first_as_sam2_corner_labels(session):
    session.set_prompt(1, 4, box=(20, 30, 60, 90), points=[(40, 50)], labels=[1])
    coords, labels = session.tracker.point_prompt(1, 4)
    assert labels.tolist() == [2, 3, 1]
    corners = coords[:2] / np.array([IMAGE_SIZE / 160, IMAGE_SIZE / 120])
    np.testing.assert_allclose(corners, [[20.0, 30.0], [60.0, 90.0]], rtol=1e-5)


def test_mask_prompt_replaces_points_on_that_frame(session, video):
    session.set_prompt(5, 1, points=[(10, 10)], labels=[1])
    session.set_mask_prompt(5, 1, video.labels[5] == 1)
    assert session.tracker.prompted_frames(1) == {"points": [], "mask": [5]}
    assert session.prompts.get(5, 1).mask is not None


def test_preview_runs_sam2_on_the_prompted_frame_only(session):
    preview = session.set_prompt(4, 1, points=[(80, 60)], labels=[1])
    assert session.results.frames() == [4]
    assert session.results.get(4, 1) is preview
    assert session.frames.frames_made == 1
    assert preview.rle["size"] == [120, 160]
    assert 0.0 <= preview.score <= 1.0


@pytest.mark.parametrize(
    ("direction", "start", "end", "expected"),
    [
        ("forward", None, None, [3, 4, 5, 6, 7, 8, 9]),
        ("backward", None, None, [3, 2, 1, 0]),
        ("both", None, None, [3, 4, 5, 6, 7, 8, 9, 2, 1, 0]),
        ("forward", None, 6, [3, 4, 5, 6]),
        ("backward", 1, None, [3, 2, 1]),
        ("forward", 5, 7, [5, 6, 7]),
        ("both", 2, 5, [3, 4, 5, 2]),
    ],
)
def test_each_direction_and_range_produces_its_frames_in_order(
    session, direction, start, end, expected
):
    session.set_prompt(3, 1, points=[(80, 60)], labels=[1])
    produced = [frame for frame, _ in session.propagate(direction, start, end)]
    assert produced == expected
    assert session.results.frames() == sorted(set(expected) | {3})


def test_every_prompted_object_comes_back_on_every_frame(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    session.set_prompt(0, 7, points=[(120, 90)], labels=[1])
    for _, masks in session.propagate():
        assert sorted(masks) == [1, 7]
        for entry in masks.values():
            assert entry.rle["size"] == [120, 160]
            if entry.box is not None:
                x, y, w, h = entry.box
                assert x >= 0 and y >= 0 and x + w <= 160 and y + h <= 120
    assert session.results.object_ids() == [1, 7]


def test_stop_from_another_thread_ends_between_frames_and_session_goes_on(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    produced = []
    for frame, _ in session.propagate():
        produced.append(frame)
        if frame == 2:
            stopper = threading.Thread(target=session.stop)
            stopper.start()
            stopper.join()
    assert produced == [0, 1, 2]
    assert not session.propagating
    assert session.results.frames() == [0, 1, 2]
    # The stopped run left the frame after its last one to do, so the next goes on there.
    assert [f for f, _ in session.propagate()] == list(range(3, N_FRAMES))


def test_closing_the_generator_releases_the_session(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    run = session.propagate()
    next(run)
    run.close()
    assert not session.propagating
    session.set_prompt(1, 1, points=[(50, 40)], labels=[1])


def test_prompts_cannot_change_while_a_frame_is_being_tracked(session, monkeypatch):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    inside, release = threading.Event(), threading.Event()
    track = session.tracker.track

    def held_on_frame_two(anchor, count, reverse):
        for frame, predictions in track(anchor, count, reverse):
            if frame == 2:
                inside.set()
                release.wait(timeout=60)
            yield frame, predictions

    monkeypatch.setattr(session.tracker, "track", held_on_frame_two)
    worker = threading.Thread(target=lambda: list(session.propagate()))
    worker.start()
    assert inside.wait(timeout=60)
    with pytest.raises(SessionBusyError, match="while propagating"):
        session.set_prompt(2, 1, points=[(40, 40)], labels=[1])
    with pytest.raises(SessionBusyError, match="already running"):
        session.propagate()
    release.set()
    worker.join(timeout=60)
    assert session.results.frames() == list(range(N_FRAMES))
    assert session.prompts.frames() == [0]


@pytest.mark.parametrize(
    ("leave", "goes_on_from"), [("break", 3), ("exception", 1), ("never started", 0)]
)
def test_a_propagation_whose_loop_was_left_keeps_nothing_busy(session, leave, goes_on_from):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    run = session.propagate()
    if leave == "break":
        for frame, _ in run:
            if frame == 2:
                break
    elif leave == "exception":
        with contextlib.suppress(KeyError):
            for _ in run:
                raise KeyError("the caller's own failure")
    session.set_prompt(5, 1, points=[(50, 40)], labels=[1])  # ends the run left open
    assert not session.propagating
    assert list(run) == []  # it stays ended
    # As after a stop: the next run goes on from the frame after the last one done.
    assert session.pending_frames == [goes_on_from, 5]
    assert [f for f, _ in session.propagate()][:1] == [goes_on_from]
    assert not session.propagating


def test_pending_frames_say_where_a_stopped_run_goes_on(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    seen = []
    for frame, _ in session.propagate():
        seen.append(session.pending_frames)  # what a save now would keep to do
        if frame == 3:
            session.stop()
    assert seen == [[1], [2], [3], [4]]
    assert session.pending_frames == [4]
    assert [f for f, _ in session.propagate()] == list(range(4, N_FRAMES))
    assert session.pending_frames == []

    session.set_prompt(2, 1, points=[(40, 40)], labels=[1])
    session.set_prompt(6, 1, points=[(45, 40)], labels=[1])
    for frame, _ in session.propagate():
        if frame == 3:
            session.stop()
    assert session.pending_frames == [4, 6]  # the correction ahead stays to do
    list(session.propagate())
    assert session.pending_frames == []

    session.set_prompt(7, 1, points=[(40, 40)], labels=[1])
    run = session.propagate("both")
    for frame, _ in run:
        if frame == 8:  # in the forward pass, the backward one is still to do from 7
            break
    run.close()
    assert session.pending_frames == [7]
    run = session.propagate("backward")
    for frame, _ in run:
        if frame == 5:
            break
    run.close()
    assert session.pending_frames == [4]


def test_forward_correction_leaves_earlier_frames_byte_identical(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    list(session.propagate())
    before = _rles(session, range(6))
    session.set_prompt(6, 1, points=[(100, 80), (30, 30)], labels=[1, 0])
    assert [f for f, _ in session.propagate(until="end")] == [6, 7, 8, 9]
    assert _rles(session, range(6)) == before
    # The correction stays a conditioning frame, so later runs keep it.
    assert 6 in session.tracker.memory_frames(1)["conditioning"]


def test_backward_correction_leaves_later_frames_byte_identical(session):
    session.set_prompt(9, 1, points=[(40, 40)], labels=[1])
    list(session.propagate("backward"))
    after = _rles(session, range(5, 10))
    session.set_prompt(4, 1, points=[(100, 80)], labels=[1])
    assert [f for f, _ in session.propagate("backward", until="end")] == [4, 3, 2, 1, 0]
    assert _rles(session, range(5, 10)) == after


def test_object_added_mid_video_tracks_from_its_first_prompt(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    list(session.propagate())
    first_frames = _rles(session, range(5))
    session.set_prompt(5, 2, points=[(120, 90)], labels=[1])
    produced = {frame: sorted(masks) for frame, masks in session.propagate()}
    assert produced == {f: [1, 2] for f in range(5, N_FRAMES)}
    assert session.results.frames_of(2) == list(range(5, N_FRAMES))
    assert _rles(session, range(5)) == first_frames


def test_removing_an_object_removes_it_everywhere(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    session.set_prompt(0, 2, points=[(120, 90)], labels=[1])
    list(session.propagate())
    assert session.remove_object(2) == list(range(N_FRAMES))
    assert session.results.object_ids() == [1]
    assert session.tracker.object_ids == [1]
    assert session.prompts.object_ids() == [1]
    assert all(sorted(m) == [1] for _, m in session.propagate("forward", start=0, end=3))


def test_clearing_prompts_downgrades_then_drops_the_object_in_sam2(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    session.set_prompt(4, 1, points=[(60, 40)], labels=[1])
    session.clear_prompt(4, 1)
    assert session.prompts.frames(1) == [0]
    assert session.tracker.prompted_frames(1)["points"] == [0]
    assert session.results.get(4, 1) is None
    session.set_prompt(0, 1)  # no points and no box: the same as clearing
    assert 1 not in session.tracker.object_ids
    with pytest.raises(PromptError, match="add a prompt first"):
        session.propagate()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frame": 0, "points": [(160, 10)], "labels": [1]}, "outside the 160x120 image"),
        ({"frame": 0, "points": [(10, -1)], "labels": [1]}, "outside the 160x120 image"),
        ({"frame": 10, "points": [(10, 10)], "labels": [1]}, "frames 0 to 9"),
        ({"frame": 0, "points": [(10, 10)], "labels": [2]}, "must be 1"),
        ({"frame": 0, "points": [(10, 10)], "labels": [1, 0]}, "1 points were given with 2"),
    ],
)
def test_bad_prompts_give_one_sentence_and_change_nothing(session, kwargs, message):
    frame = kwargs.pop("frame")
    with pytest.raises(PromptError, match=message):
        session.set_prompt(frame, 1, **kwargs)
    assert len(session.prompts) == 0
    assert session.tracker.object_ids == []


def test_tracking_state_stays_bounded_on_a_longer_video(model):
    video = make_synthetic_video(n_frames=40, height=64, width=80, n_objects=1)
    session = TrackingSession(video.frames, model)
    session.set_prompt(0, 1, points=[(30, 30)], labels=[1])
    peak = 0
    for _ in session.propagate():
        peak = max(peak, session.tracking_state_frames()["tracked"])
    assert peak <= session.memory_window + 1
    assert session.tracking_state_frames()["conditioning"] == 1


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_greyscale_high_bit_depth_sources_track(model, dtype):
    rng = np.random.default_rng(0)
    frames = (rng.random((4, 48, 64)) * 4000).astype(dtype)
    session = TrackingSession(frames, model)
    session.set_prompt(0, 1, points=[(30, 20)], labels=[1])
    assert [f for f, _ in session.propagate()] == [0, 1, 2, 3]
    image = session.frames[0]
    assert image.shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    torch.testing.assert_close(image[0] * 0.229 + 0.485, image[2] * 0.225 + 0.406)


def test_first_frames_of_a_real_video_track_lazily(model, bedroom):
    from napari_sam2_track.video import VideoFrames

    frames = VideoFrames(bedroom)
    session = TrackingSession(frames, model)
    session.set_prompt(0, 1, points=[(480, 270), (100, 100)], labels=[1, 0])
    produced = [f for f, _ in session.propagate("forward", end=11)]
    assert produced == list(range(12))
    assert session.frames.frames_made == 12
    assert session.results.get(11, 1).rle["size"] == [540, 960]


@pytest.mark.parametrize(
    ("direction", "start", "end", "total"),
    [
        ("forward", None, None, 7),
        ("backward", None, None, 4),
        ("both", None, None, 10),
        ("both", 2, 5, 4),
    ],
)
def test_a_propagation_knows_how_many_frames_it_will_yield(session, direction, start, end, total):
    session.set_prompt(3, 1, points=[(80, 60)], labels=[1])
    run = session.propagate(direction, start, end)
    assert run.total == total == sum(1 for _ in run)


def test_restored_session_keeps_stored_masks_and_continues_from_new_prompts(model, video):
    first = TrackingSession(video.frames, model)
    first.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    list(first.propagate())
    stored = {f: first.results.get(f, 1).rle["counts"] for f in range(N_FRAMES)}

    again = TrackingSession(video.frames, model)
    again.restore(first.prompts, first.results)
    assert again.pending_frames == []
    assert again.tracker.prompted_frames(1)["points"] == [0]
    assert {f: again.results.get(f, 1).rle["counts"] for f in range(N_FRAMES)} == stored
    again.set_prompt(7, 1, points=[(90, 50)], labels=[1])
    assert [f for f, _ in again.propagate(until="end")] == [7, 8, 9]


def _tracked(session, corrections=(), first_end=None, **options):
    """Track from a click on frame 0 (up to ``first_end``), correct ``corrections`` and
    propagate again with ``options``: the second run."""
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    list(session.propagate(end=first_end))
    for frame in corrections:
        session.set_prompt(frame, 1, points=[(100, 80), (30, 30)], labels=[1, 0])
    return session.propagate(**options)


def test_a_range_starts_at_its_first_changed_frame_not_its_start(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    list(session.propagate(start=0, end=7))
    before = _rles(session, range(4))
    session.set_prompt(4, 1, points=[(100, 80)], labels=[1])
    assert [f for f, _ in session.propagate(start=0, end=7, until="end")] == [4, 5, 6, 7]
    assert _rles(session, range(4)) == before
    assert session.pending_frames == []


def test_a_backward_range_starts_at_its_last_changed_frame_not_its_end(session):
    session.set_prompt(9, 1, points=[(40, 40)], labels=[1])
    list(session.propagate("backward", start=2, end=9))
    after = _rles(session, range(6, 10))
    session.set_prompt(5, 1, points=[(100, 80)], labels=[1])
    produced = [f for f, _ in session.propagate("backward", start=2, end=9, until="end")]
    assert produced == [5, 4, 3, 2]
    assert _rles(session, range(6, 10)) == after


def test_running_again_with_nothing_changed_stops_once_the_track_rejoins(session):
    run = _tracked(session)
    assert [f for f, _ in run] == [0, 1, 2]  # the rule's default: three frames in a row
    assert run.rejoined_at == (2,) and run.retracked == (0, 2)
    assert run.summary() == "Re-tracked frames 0–2; the track re-joined at 2."
    longer = session.propagate(rejoin=RejoinRule(frames=5))
    assert [f for f, _ in longer] == [0, 1, 2, 3, 4]


def test_a_correction_is_retracked_until_it_rejoins_and_later_frames_stay(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    list(session.propagate())
    before = {f: session.results.get(f, 1) for f in range(N_FRAMES)}
    session.set_prompt(3, 1, points=[(100, 80), (30, 30)], labels=[1, 0])
    run = session.propagate()
    produced = [f for f, _ in run]
    (rejoined,) = run.rejoined_at
    assert 3 + 2 < rejoined < N_FRAMES - 1  # stopped early, after three frames at least
    assert produced == list(range(3, rejoined + 1)) and run.total == N_FRAMES - 3
    assert run.retracked == (3, rejoined)
    for f in range(rejoined - 2, rejoined + 1):  # what re-joining means
        assert mask_iou(before[f], session.results.get(f, 1)) >= RejoinRule().iou
    kept = [f for f in range(N_FRAMES) if f < 3 or f > rejoined]
    assert _rles(session, kept) == {f: before[f].rle["counts"] for f in kept}
    assert session.pending_frames == []  # a run that re-joined is finished


def test_until_end_retracks_a_correction_to_the_end(session):
    run = _tracked(session, [3], until="end")
    assert [f for f, _ in run] == list(range(3, N_FRAMES))
    assert run.rejoined_at == () and run.summary() == "Tracked frames 3–9."


def test_frames_never_tracked_are_tracked_whatever_rejoins_before_them(session):
    run = _tracked(session, [2], first_end=5)
    assert [f for f, _ in run] == list(range(2, N_FRAMES)) and run.rejoined_at == ()


def test_a_rejoin_waits_for_the_last_changed_frame_of_the_pass(session):
    run = _tracked(session, [2, 7])
    assert [f for f, _ in run] == list(range(2, N_FRAMES)) and run.rejoined_at == ()


def test_an_unknown_until_is_refused_in_one_sentence(session):
    with pytest.raises(PromptError, match="until must be one of rejoin, end"):
        session.propagate(until="later")
