"""End-to-end behaviour with real (if miniature) weights: the bundled ``mini-synthetic``
model, a SAM 2 trained on the synthetic videos (tools/train_mini_sam2.py), tracking
held-out synthetic videos through the engine, checked against the generator's exact
ground truth. tools/eval_mini_sam2.py measures the same on more videos.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from napari_sam2_track import models
from napari_sam2_track.boxes import mask_to_box
from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.synthetic import make_synthetic_video

from synthetic_eval import correction_click, deepest_point
from synthetic_eval import mask_iou as iou

HEIGHT, WIDTH = 120, 160
# What users should get on a single object (tools/eval_mini_sam2.py targets 0.85 over 24
# frames): 12 frames, less a margin for a 1-pixel boundary error on these small shapes.
MEAN_IOU_TRACKED = 0.75
# Videos for the preview and single-object tests: a spread of shapes, sizes and textures
# rather than one video, as what the model must do is cover most shapes, not every one
# (tools/eval_mini_sam2.py measures the same on many more).
PREVIEW_SEEDS = range(31, 51)
SINGLE_SEEDS = range(41, 47)
# Videos for the correction tests: four objects that cross and hide one another, seeds
# in a row past the evaluation's (200 to 343), not picked for what any weights do there.
CORRECTION_SEEDS = range(400, 412)
CORRECTION_FRAMES = 16
# Below this IoU a mask is wrong enough for a person to stop and correct it, as in
# tools/eval_mini_sam2.py; a frame the object shows fewer pixels on is as good as empty.
LOST, MIN_AREA = 0.5, 30


@pytest.fixture(scope="module")
def mini():
    from napari_sam2_track.sam2_backend import build_model

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


@dataclass
class Correction:
    """One corrective click on an object's masks (each mask stack (T, H, W) bool)."""

    obj: int
    frame: int
    point: tuple[float, float]
    label: int
    truth: np.ndarray
    before: np.ndarray
    fixed: np.ndarray  # the clicked frame's mask the click gave, before tracking again
    after: np.ndarray

    def later_j(self, masks: np.ndarray) -> float:
        """Mean J of ``masks`` on the frames after the clicked one."""
        later = range(self.frame + 1, len(self.truth))
        return float(np.mean([iou(masks[t], self.truth[t]) for t in later]))


@pytest.fixture(scope="module")
def corrected_videos(mini):
    """Each video of CORRECTION_SEEDS with all its objects clicked on frame 0 and tracked;
    then each object lost on a frame far behind the end of that tracking (past SAM 2's
    memory of the last frames) gets one click there, where a person would fix it, and
    the video is tracked again: (masks of every object before, after, the corrections)."""
    videos = []
    for seed in CORRECTION_SEEDS:
        video = make_synthetic_video(CORRECTION_FRAMES, HEIGHT, WIDTH, n_objects=4, seed=seed)
        session = TrackingSession(video.frames, mini)
        for obj in range(1, video.n_objects + 1):
            session.set_prompt(0, obj, points=[deepest_point(video.labels[0] == obj)], labels=[1])
        run(session)
        before = {obj: tracked_masks(session, obj) for obj in session.object_ids}
        clicks = []
        for obj, masks in before.items():
            truth = video.labels == obj
            far_behind = range(1, session.n_frames - session.memory_window)
            lost = [t for t in far_behind if iou(masks[t], truth[t]) < LOST]
            if lost:
                point, label = correction_click(truth[lost[0]], masks[lost[0]])
                fixed = session.set_prompt(lost[0], obj, points=[point], labels=[label]).mask
                clicks.append((obj, lost[0], point, label, truth, fixed))
        if not clicks:
            continue
        run(session)
        after = {obj: tracked_masks(session, obj) for obj in session.object_ids}
        corrections = [
            Correction(obj, frame, point, label, truth, before[obj], fixed, after[obj])
            for obj, frame, point, label, truth, fixed in clicks
        ]
        videos.append((before, after, corrections))
    if not videos:
        pytest.skip("the model lost no object in these videos: there is nothing to correct")
    return videos


def all_corrections(corrected_videos) -> list[Correction]:
    return [c for _, _, corrections in corrected_videos for c in corrections]


def test_a_correction_leaves_the_frames_before_it_as_they_were(corrected_videos):
    for before, after, corrections in corrected_videos:
        first = min(c.frame for c in corrections)
        for obj in before:
            assert np.array_equal(after[obj][:first], before[obj][:first]), (obj, first)


def test_a_corrective_click_is_heeded_on_its_frame(corrected_videos):
    """Far behind the tracking, the click is read against the memory of the frames just
    before it (encoded again from their masks): a negative click trims the mask there
    rather than dropping the object."""
    corrections = all_corrections(corrected_videos)
    for c in corrections:
        x, y = round(c.point[0]), round(c.point[1])
        for mask in (c.fixed, c.after[c.frame]):
            assert mask[y, x] == bool(c.label), (c.obj, c.frame, c.label)
        if c.label == 0 and c.truth[c.frame].sum() >= MIN_AREA:
            assert c.fixed.any(), (c.obj, c.frame)
    j_before = [iou(c.before[c.frame], c.truth[c.frame]) for c in corrections]
    j_after = [iou(c.after[c.frame], c.truth[c.frame]) for c in corrections]
    assert np.mean(j_after) - np.mean(j_before) >= 0.1, (j_before, j_after)


def test_a_correction_carries_on_to_the_frames_after_it(corrected_videos):
    corrections = all_corrections(corrected_videos)
    for c in corrections:
        later = slice(c.frame + 1, None)
        assert not np.array_equal(c.after[later], c.before[later]), (c.obj, c.frame)
    j_before = [c.later_j(c.before) for c in corrections]
    j_after = [c.later_j(c.after) for c in corrections]
    assert np.mean(j_after) >= np.mean(j_before) - 0.02, (j_before, j_after)
