"""Re-tracking that stops where it re-joins, with real (if miniature) weights: the
bundled ``mini-synthetic`` model on a long synthetic video, against a re-track of the
same correction to the end.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track import models
from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.results import TrackResults
from napari_sam2_track.synthetic import make_synthetic_video

from synthetic_eval import correction_click, deepest_point
from synthetic_eval import mask_iou as iou

N_FRAMES, CORRECTED, HEIGHT, WIDTH = 60, 10, 120, 160
SEED = 400  # the first of the correction seeds of test_mini_model.py
# How close the kept masks must stay to a re-track to the end (mean J over the video).
MAX_J_GAP = 0.02


@pytest.fixture(scope="module")
def tracked():
    """The video, and its object clicked on frame 0 and tracked to the end."""
    from napari_sam2_track.sam2_backend import build_model

    model = build_model(models.SYNTHETIC_MODEL, device="cpu")
    video = make_synthetic_video(N_FRAMES, HEIGHT, WIDTH, n_objects=1, seed=SEED)
    session = TrackingSession(video.frames, model)
    session.set_prompt(0, 1, points=[deepest_point(video.labels[0] == 1)], labels=[1])
    list(session.propagate())
    return model, video, session


def corrected(model, video, first: TrackingSession) -> TrackingSession:
    """A session continuing ``first`` with a person's click on frame CORRECTED."""
    results = TrackResults(N_FRAMES, HEIGHT, WIDTH)
    for frame, objects in first.results:
        for obj_id, entry in objects.items():
            results.set(frame, obj_id, entry)
    session = TrackingSession(video.frames, model)
    session.restore(first.prompts, results)
    truth = video.labels[CORRECTED] == 1
    point, label = correction_click(truth, results.get(CORRECTED, 1).mask)
    session.set_prompt(CORRECTED, 1, points=[point], labels=[label])
    return session


def masks(session: TrackingSession) -> np.ndarray:
    return np.stack([session.results.get(t, 1).mask for t in range(N_FRAMES)])


def test_a_retrack_stops_well_before_the_end_close_to_a_full_one(tracked):
    model, video, first = tracked
    stopping = corrected(model, video, first)
    run = stopping.propagate()
    produced = [f for f, _ in run]
    (rejoined,) = run.rejoined_at
    assert produced == list(range(CORRECTED, rejoined + 1))
    assert rejoined < N_FRAMES // 2, run.summary()  # well before the end

    full = corrected(model, video, first)
    assert [f for f, _ in full.propagate(until="end")] == list(range(CORRECTED, N_FRAMES))
    kept, retracked = masks(stopping), masks(full)
    truth = video.labels == 1
    j_kept = np.mean([iou(kept[t], truth[t]) for t in range(N_FRAMES)])
    j_full = np.mean([iou(retracked[t], truth[t]) for t in range(N_FRAMES)])
    assert abs(j_kept - j_full) <= MAX_J_GAP, (j_kept, j_full)
    agree = np.mean([iou(kept[t], retracked[t]) for t in range(N_FRAMES)])
    assert agree >= 1 - MAX_J_GAP, agree
