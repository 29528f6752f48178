"""The prompt queue and a propagation's messages, on a real (random-weight) SAM 2."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.prompt_queue import (
    FrameTracked,
    PreviewShown,
    PromptQueue,
    PropagationEnded,
    PropagationPlanned,
    propagation_messages,
)
from napari_sam2_track.prompts import FramePrompt
from napari_sam2_track.synthetic import make_synthetic_video

N_FRAMES = 4


@pytest.fixture
def session(random_model):
    video = make_synthetic_video(n_frames=N_FRAMES, height=48, width=64, n_objects=1)
    return TrackingSession(video.frames, random_model)


def points(*xy):
    return FramePrompt(np.array(xy, float), np.ones(len(xy), int))


def test_the_newest_prompt_per_frame_and_object_wins(session):
    queue = PromptQueue()
    queue.schedule(1, 1, points((10, 10)))
    queue.schedule(1, 1, points((10, 10), (20, 30)))
    queue.schedule(2, 1, points((5, 5)))
    assert len(queue) == 2
    assert sorted(queue.apply(session)) == [1, 2]
    assert not queue
    np.testing.assert_array_equal(session.prompts.get(1, 1).points, [[10, 10], [20, 30]])


def test_removals_and_masks_reach_the_session(session):
    queue = PromptQueue()
    queue.schedule(0, 1, points((10, 10)))
    mask = np.zeros((48, 64), bool)
    mask[5:15, 5:20] = True
    queue.schedule(2, 2, FramePrompt(mask=mask))
    list(queue.apply(session))
    assert session.prompts.get(2, 2).mask is not None
    queue.schedule(0, 1, None)
    assert list(queue.apply(session)) == [0]
    assert session.prompts.get(0, 1) is None


def test_changes_wait_in_the_queue_while_the_session_propagates(session):
    session.set_prompt(0, 1, [(10, 10)], [1])
    queue = PromptQueue()
    run = session.propagate()
    next(run)  # propagating now
    queue.schedule(2, 1, points((30, 20)))
    assert list(queue.apply(session)) == []
    assert len(queue) == 1
    run.close()
    assert list(queue.apply(session)) == [2]


def test_discarding_an_object_forgets_only_its_changes():
    queue = PromptQueue()
    queue.schedule(0, 1, points((1, 1)))
    queue.schedule(0, 2, points((2, 2)))
    queue.discard_object(2)
    assert len(queue) == 1


def test_a_propagation_reports_previews_its_plan_each_frame_then_what_it_tracked(session):
    queue = PromptQueue()
    queue.schedule(1, 1, points((10, 10)))
    messages = list(propagation_messages(session, queue, "forward"))
    assert messages[:2] == [PreviewShown(1), PropagationPlanned(N_FRAMES - 1)]
    assert messages[2:-1] == [FrameTracked(f) for f in range(1, N_FRAMES)]
    assert messages[-1] == PropagationEnded(f"Tracked frames 1–{N_FRAMES - 1}.")
    assert not queue


def test_each_tracked_frame_is_prepared_in_the_worker_once_its_masks_are_in(session):
    from napari_sam2_track.label_volume import FrameDrawer

    session.set_prompt(0, 1, [(10, 10)], [1])
    drawer = FrameDrawer(session.results, limit=N_FRAMES)
    messages = propagation_messages(session, PromptQueue(), prepare=drawer.draw)
    tracked = [m for m in messages if isinstance(m, FrameTracked)]
    assert [m.frame for m in tracked] == list(range(N_FRAMES))
    for message in tracked:
        drawn = message.labels
        assert drawn.frame == message.frame
        assert drawn.objects == session.results.frame(message.frame) != {}
        np.testing.assert_array_equal(drawn.take(), session.results.labels(message.frame))
