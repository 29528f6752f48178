"""End-to-end behaviour with real (if miniature) weights: the bundled ``mini-synthetic``
model, a SAM 2 trained on the synthetic videos (tools/train_mini_sam2.py), tracking
held-out synthetic videos through the engine, checked against the generator's exact
ground truth. tools/eval_mini_sam2.py measures the same on more videos.
"""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_eval import correction_click, deepest_point
from synthetic_eval import mask_iou as iou

from napari_sam2_track import models
from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.results import mask_to_box
from napari_sam2_track.synthetic import make_synthetic_video

HEIGHT, WIDTH = 120, 160
# What users should get on a single object (tools/eval_mini_sam2.py targets 0.85 over 24
# frames): 12 frames, less a margin for a 1-pixel boundary error on these small shapes.
MEAN_IOU_TRACKED = 0.75
# Videos for the preview and single-object tests: a spread of shapes, sizes and textures
# rather than one video, as what the model must do is cover most shapes, not every one
# (tools/eval_mini_sam2.py measures the same on many more).
PREVIEW_SEEDS = range(31, 51)
SINGLE_SEEDS = range(41, 47)
# Videos beyond the evaluation's (seeds 200 to 343), chosen for what each test needs:
# here the mask of object 3, tracked alone, leaves it on frame 9 and does not come back
# by itself.
CORRECTION_SEED, CORRECTION_FRAMES, CORRECTION_OBJECT = 404, 24, 3
# All four objects tracked: the mask of object 3 takes in the shape beside it on frame 8,
# long before the end of the clip SAM 2 tracked to.
TRIM_SEED, TRIM_OBJECT, TRIM_FRAME = 422, 3, 8
# All four tracked: the mask of object 4 goes wrong on frame 7, where one negative click
# fixes it.
CARRY_SEED, CARRY_OBJECT, CARRY_FRAME = 435, 4, 7


@pytest.fixture(scope="module")
def mini():
    from napari_sam2_track.predictor import build_model

    return build_model(models.SYNTHETIC_MODEL, device="cpu")


def tracked_masks(session: TrackingSession, obj: int) -> np.ndarray:
    entries = [session.results.get(t, obj) for t in range(session.n_frames)]
    empty = np.zeros((session.height, session.width), dtype=bool)
    return np.stack([empty if e is None else e.mask for e in entries])


def run(session: TrackingSession) -> None:
    for _ in session.propagate("forward"):
        pass


def test_bundled_model_needs_no_download(tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "empty-cache"))
    spec = models.get_model(models.SYNTHETIC_MODEL)
    assert spec.bundled and "not for real footage" in spec.description
    path = models.ensure_checkpoint(spec)
    assert path == models.BUNDLED_DIR / "mini_synthetic.pt"
    assert 0 < path.stat().st_size < 20 * 2**20
    assert (models.BUNDLED_DIR / spec.config).is_file()
    row = {r["name"]: r for r in models.list_models()}[models.SYNTHETIC_MODEL]
    assert row["cached"] is True and row["path"] == path
    assert row["size_bytes"] == path.stat().st_size
    assert not (tmp_path / "empty-cache").exists()


def test_previews_cover_the_clicked_shapes(mini):
    scores = []
    for seed in PREVIEW_SEEDS:
        video = make_synthetic_video(1, HEIGHT, WIDTH, n_objects=4, seed=seed)
        session = TrackingSession(video.frames, mini)
        for obj in range(1, video.n_objects + 1):
            visible = video.labels[0] == obj
            if not np.array_equal(visible, video.full_masks[obj - 1, 0]):
                continue  # partly hidden: the click is ambiguous about what it means
            preview = session.set_prompt(0, obj, points=[deepest_point(visible)], labels=[1])
            scores.append(iou(preview.mask, visible))
    assert len(scores) >= 50
    assert np.mean(np.array(scores) >= 0.8) >= 0.9, sorted(scores)[:10]


@pytest.fixture(scope="module")
def single_objects_tracked(mini):
    """Each video of SINGLE_SEEDS, its object clicked on frame 0 and tracked for 12 frames:
    (seed, video, session)."""
    tracked = []
    for seed in SINGLE_SEEDS:
        video = make_synthetic_video(12, HEIGHT, WIDTH, n_objects=1, seed=seed)
        session = TrackingSession(video.frames, mini)
        session.set_prompt(0, 1, points=[deepest_point(video.labels[0] == 1)], labels=[1])
        run(session)
        tracked.append((seed, video, session))
    return tracked


def test_propagation_follows_the_object(single_objects_tracked):
    for seed, video, session in single_objects_tracked:
        masks = tracked_masks(session, 1)
        scores = [iou(masks[t], video.labels[t] == 1) for t in range(session.n_frames)]
        assert np.mean(scores) >= MEAN_IOU_TRACKED, (seed, scores)


def test_boxes_match_the_ground_truth(single_objects_tracked):
    close = []
    for _, video, session in single_objects_tracked:
        for t in range(session.n_frames):
            truth = mask_to_box(video.labels[t] == 1)
            entry = session.results.get(t, 1)
            if truth is None or entry is None or entry.box is None:
                close.append(truth is None and (entry is None or entry.box is None))
                continue
            close.append(bool(np.all(np.abs(np.subtract(entry.box, truth)) <= 2)))
    assert np.mean(close) >= 0.9, np.mean(close)


def test_correction_improves_later_frames(mini):
    video = make_synthetic_video(
        CORRECTION_FRAMES, HEIGHT, WIDTH, n_objects=4, seed=CORRECTION_SEED
    )
    obj = CORRECTION_OBJECT
    gt = video.labels == obj
    session = TrackingSession(video.frames, mini)
    session.set_prompt(0, obj, points=[deepest_point(gt[0])], labels=[1])
    run(session)
    before = tracked_masks(session, obj)
    scores = [iou(before[t], gt[t]) for t in range(len(gt))]
    lost = [t for t in range(1, len(gt) - 1) if scores[t] < 0.5]
    assert lost, "the object was never lost, so there is nothing to correct"
    frame = lost[0]
    point, label = correction_click(gt[frame], before[frame])
    session.set_prompt(frame, obj, points=[point], labels=[label])
    run(session)
    after = tracked_masks(session, obj)
    later = range(frame + 1, len(gt))
    gain = np.mean([iou(after[t], gt[t]) for t in later]) - np.mean([scores[t] for t in later])
    assert gain >= 0.1, gain


def test_a_negative_click_far_behind_the_tracking_trims_the_mask(mini):
    """The click is read against the memory of the frames just before it (encoded again
    from their masks): without it the model drops the object there and after."""
    video = make_synthetic_video(24, HEIGHT, WIDTH, n_objects=4, seed=TRIM_SEED)
    session = TrackingSession(video.frames, mini)
    for obj in range(1, video.n_objects + 1):
        visible = video.labels[0] == obj
        session.set_prompt(0, obj, points=[deepest_point(visible)], labels=[1])
    run(session)
    gt = video.labels == TRIM_OBJECT
    before = tracked_masks(session, TRIM_OBJECT)
    frame = next(t for t in range(1, 23) if iou(before[t], gt[t]) < 0.5)
    assert frame == TRIM_FRAME and frame < session.n_frames - session.memory_window
    point, label = correction_click(gt[frame], before[frame])
    assert label == 0

    fixed = session.set_prompt(frame, TRIM_OBJECT, points=[point], labels=[label])
    assert iou(fixed.mask, gt[frame]) > iou(before[frame], gt[frame])
    run(session)
    after = tracked_masks(session, TRIM_OBJECT)
    later = range(frame + 1, 24)
    assert np.mean([iou(after[t], gt[t]) for t in later]) > np.mean(
        [iou(before[t], gt[t]) for t in later]
    )


def test_a_fix_carries_on_past_the_drifted_frames_behind_it(mini):
    """Read beside the fix, the drifted frames before it pull the mask back to where it
    went wrong; the engine tracks on from the fix and the prompted frames instead."""
    video = make_synthetic_video(24, HEIGHT, WIDTH, n_objects=4, seed=CARRY_SEED)
    gt = video.labels == CARRY_OBJECT
    gains = {}
    for supersede in (False, True):
        session = TrackingSession(video.frames, mini, prompts_supersede_memory=supersede)
        for obj in range(1, video.n_objects + 1):
            session.set_prompt(0, obj, points=[deepest_point(video.labels[0] == obj)], labels=[1])
        run(session)
        before = tracked_masks(session, CARRY_OBJECT)
        frame = next(t for t in range(1, 23) if iou(before[t], gt[t]) < 0.5)
        point, label = correction_click(gt[frame], before[frame])
        assert (frame, label) == (CARRY_FRAME, 0)
        session.set_prompt(frame, CARRY_OBJECT, points=[point], labels=[label])
        run(session)
        after = tracked_masks(session, CARRY_OBJECT)
        later = range(frame + 1, 24)
        gains[supersede] = np.mean([iou(after[t], gt[t]) - iou(before[t], gt[t]) for t in later])
    assert gains[True] >= 0.3 and gains[True] - gains[False] >= 0.2, gains
