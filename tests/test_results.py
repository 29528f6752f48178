"""Results storage and prompt bookkeeping: pure functions, no model."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.boxes import mask_to_box
from napari_sam2_track.prompts import FramePrompt, PromptError, PromptSet, prompts_from_points
from napari_sam2_track.results import (
    ObjectMask,
    TrackResults,
    decode_mask,
    encode_mask,
    rle_from_json,
    rle_json,
)


def test_box_follows_cocos_convention():
    mask = np.zeros((6, 8), bool)
    mask[1:3, 2:5] = True  # rows 1-2, columns 2, 3, 4
    assert mask_to_box(mask) == (2, 1, 3, 2)
    assert mask_to_box(np.zeros((4, 4), bool)) is None
    single = np.zeros((4, 4), bool)
    single[3, 0] = True
    assert mask_to_box(single) == (0, 3, 1, 1)


def test_rle_survives_json_as_coco_writes_it():
    import json

    mask = np.random.default_rng(3).random((9, 7)) > 0.5
    text = json.dumps(rle_json(encode_mask(mask)))
    assert set(json.loads(text)) == {"size", "counts"}
    np.testing.assert_array_equal(decode_mask(rle_from_json(json.loads(text))), mask)


def test_box_matches_pycocotools_toBbox():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    for _ in range(5):
        mask = np.zeros((30, 40), bool)
        y, x = rng.integers(0, 25), rng.integers(0, 35)
        mask[y : y + rng.integers(1, 5), x : x + rng.integers(1, 5)] = True
        entry = ObjectMask.from_mask(mask)
        assert list(mask_utils.toBbox(entry.rle)) == list(entry.box)
        assert entry.area == mask_utils.area(entry.rle) == mask.sum()


def test_masks_round_trip_through_rle_and_stay_small():
    mask = np.zeros((1080, 1920), bool)
    mask[200:600, 300:900] = True
    entry = ObjectMask.from_mask(mask, score=0.9)
    np.testing.assert_array_equal(entry.mask, mask)
    assert len(entry.rle["counts"]) < 3000  # vs 2 MB dense
    assert ObjectMask.from_mask(np.zeros((4, 4), bool)).empty


def test_results_bookkeeping():
    results = TrackResults(n_frames=5, height=4, width=6)
    full = np.ones((4, 6), bool)
    left = np.zeros((4, 6), bool)
    left[:, :2] = True
    results.set(0, 1, full, score=0.2)
    results.set(0, 2, left, score=0.9)
    results.set(3, 2, left)
    assert results.frames() == [0, 3]
    assert results.frames_of(1) == [0]
    assert results.object_ids() == [1, 2]
    labels = results.labels(0)
    assert labels[0, 0] == 2 and labels[0, 5] == 1  # the surer object is on top
    assert results.boxes(0) == {1: (0, 0, 6, 4), 2: (0, 0, 2, 4)}
    assert results.remove_object(2) == [0, 3]
    assert results.frames() == [0]
    assert results.discard(0, 1) and not results.discard(0, 1)
    with pytest.raises(ValueError, match="does not fit 6x4 frames"):
        results.set(1, 1, np.ones((5, 5), bool))
    with pytest.raises(IndexError, match="out of range"):
        results.set(5, 1, full)


def test_napari_points_become_xy_prompts_per_frame_and_object():
    data = np.array([[0, 10, 20], [0, 11, 21], [3, 5, 6], [0, 1, 2]])
    prompts = prompts_from_points(data, labels=[1, 0, 1, 1], obj_ids=[1, 1, 1, 2])
    assert sorted(prompts) == [(0, 1), (0, 2), (3, 1)]
    np.testing.assert_array_equal(prompts[(0, 1)].points, [[20, 10], [21, 11]])
    np.testing.assert_array_equal(prompts[(0, 1)].labels, [1, 0])
    np.testing.assert_array_equal(prompts[(3, 1)].points, [[6, 5]])
    with pytest.raises(PromptError, match="needs a label and an object id"):
        prompts_from_points(data, labels=[1], obj_ids=[1, 1, 1, 2])


def test_prompt_set_and_frame_prompt_rules():
    prompts = PromptSet()
    prompts.set(2, 1, FramePrompt(points=[(1, 2)], labels=[1]))
    prompts.set(5, 1, FramePrompt(box=(9, 9, 1, 1)))
    prompts.set(5, 3, FramePrompt(points=[(1, 2)], labels=[0]))
    assert prompts.get(5, 1).box == (1, 1, 9, 9)  # corners sorted
    assert prompts.frames() == [2, 5] and prompts.frames(3) == [5]
    assert prompts.remove_object(1) == [2, 5]
    prompts.set(5, 3, FramePrompt())
    assert len(prompts) == 0
    with pytest.raises(PromptError, match="either points and a box, or a mask"):
        FramePrompt(points=[(1, 1)], labels=[1], mask=np.ones((2, 2)))
    with pytest.raises(PromptError, match="mask for frame 0 is 2x2 but the video is 4x3"):
        FramePrompt(mask=np.ones((2, 2))).check_fits(0, 1, 3, 4)


def test_box_layer_data_for_some_frames_is_the_whole_one_restricted():
    from napari_sam2_track.layers import box_layer_data, corners_to_box
    from napari_sam2_track.store import ObjectInfo

    results = TrackResults(n_frames=6, height=20, width=30)
    for frame in range(6):
        for obj_id in (1, 2):
            mask = np.zeros((20, 30), bool)
            mask[frame : frame + 4, obj_id * 5 : obj_id * 5 + 3] = True
            results.set(frame, obj_id, mask)
    results.set(3, 2, np.zeros((20, 30), bool))  # an object with no box there
    objects = {1: ObjectInfo(1, "cup", "tableware")}  # object 2 has neither name nor class
    every, every_features = box_layer_data(results, objects)
    some, some_features = box_layer_data(results, objects, {4, 3, 9})

    def rows(rectangles, features):
        columns = [features[name] for name in ("frame", "obj_id", "name", "class", "score")]
        return [(*row, corners_to_box(r)) for r, *row in zip(rectangles, *columns, strict=True)]

    everything = rows(every, every_features)
    assert len(everything) == 11
    assert {row[1:5] for row in everything} == {
        (1, "cup", "tableware", 1.0),
        (2, "object 2", "object", 1.0),
    }
    assert rows(some, some_features) == [row for row in everything if row[0] in (3, 4)]
    assert [row[:3] for row in rows(some, some_features)] == [
        (3, 1, "cup"),
        (4, 1, "cup"),
        (4, 2, "object 2"),
    ]


def test_label_volume_takes_a_one_frame_block_and_hands_out_copies():
    from napari_sam2_track.label_volume import LabelVolume

    results = TrackResults(n_frames=4, height=6, width=8)
    mask = np.zeros((6, 8), bool)
    mask[1:3, 1:3] = True
    results.set(1, 5, mask)
    volume = LabelVolume(results)
    shown = volume[1]
    shown[0, 0] = 9  # what napari does to the slice it shows
    assert volume[1][0, 0] == 0 and volume.painted_frames == []
    # napari writes a brush's bounding box back as a block one frame deep.
    block = np.asarray(volume[2:3, 0:2, 4:6]).copy()
    block[:] = 7
    volume[2:3, 0:2, 4:6] = block
    assert volume.painted_frames == [2]
    assert (volume[2][0:2, 4:6] == 7).all() and volume[2].sum() == 28
    with pytest.raises(IndexError, match="one frame at a time"):
        volume[1:3, 0:2, 0:2] = 1


def square_results(n_frames: int = 4) -> TrackResults:
    results = TrackResults(n_frames=n_frames, height=6, width=8)
    mask = np.zeros((6, 8), bool)
    mask[1:3, 1:3] = True
    for frame in range(n_frames):
        results.set(frame, 5, mask)
    return results


def test_a_frame_drawn_by_a_worker_is_the_one_the_volume_hands_napari(monkeypatch):
    from napari_sam2_track.label_volume import FrameDrawer, LabelVolume

    results = square_results()
    volume, expected = LabelVolume(results), results.labels(1)
    drawn = FrameDrawer(results).draw(1)

    def render_again(*_args, **_kwargs):
        raise AssertionError("a drawn frame was rendered again")

    monkeypatch.setattr(results, "labels", render_again)
    assert volume.keep(drawn)
    assert drawn.take() is None  # handed over once: a message kept holds no image
    np.testing.assert_array_equal(volume[1], expected)
    assert volume[1].dtype == LabelVolume.dtype and not volume.frame(1).flags.writeable


def test_a_drawn_frame_whose_masks_changed_since_or_that_is_painted_is_not_taken():
    from napari_sam2_track.label_volume import FrameDrawer, LabelVolume

    results = square_results()
    volume, drawer = LabelVolume(results), FrameDrawer(results)
    stale = drawer.draw(1)
    results.set(1, 5, np.ones((6, 8), bool))  # a paint stroke folded in meanwhile, say
    assert not volume.keep(stale)
    np.testing.assert_array_equal(volume[1], results.labels(1))
    volume[2, 0, 0] = 3
    assert not volume.keep(drawer.draw(2))
    assert volume[2][0, 0] == 3


def test_the_drawer_holds_at_most_its_limit_of_frames_not_taken_in():
    from napari_sam2_track.label_volume import FrameDrawer, LabelVolume

    results = square_results()
    volume, drawer = LabelVolume(results), FrameDrawer(results, limit=2)
    first, second = drawer.draw(0), drawer.draw(1)
    assert first is not None and second is not None
    assert drawer.draw(2) is None  # the viewer is behind: it renders frame 2 itself
    volume.keep(first)
    assert drawer.draw(3) is not None


def test_the_label_volume_keeps_a_bounded_number_of_frames():
    from napari_sam2_track.label_volume import FrameDrawer, LabelVolume

    results = square_results(n_frames=10)
    volume, drawer = LabelVolume(results, cached_frames=3), FrameDrawer(results)
    for frame in range(10):
        if frame % 2:
            assert volume.keep(drawer.draw(frame))
        else:
            volume.frame(frame)
    assert volume.rendered_frames == [7, 8, 9]


def test_folding_a_painted_frame_marks_only_the_masks_it_changed_as_painted():
    from napari_sam2_track.label_volume import fold_painted_frame

    results = square_results()
    labels = results.labels(2).astype(np.uint8)
    labels[4, 6] = 7  # a new object painted in; object 5 left as SAM 2 gave it
    assert fold_painted_frame(results, 2, labels) == [7]
    assert results.get(2, 7).painted and results.get(2, 7).area == 1
    assert not results.get(2, 5).painted
    labels[1, 1] = 0  # object 5 painted over
    assert fold_painted_frame(results, 2, labels) == [5]
    assert results.get(2, 5).painted and results.get(2, 5).area == 3
