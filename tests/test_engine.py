"""The tracking engine on the real SAM 2 architecture with random weights.

Random weights make meaningless masks, so these tests pin down what they cannot fake:
which prompts reach SAM 2's state, which frames each propagation produces and in what
order, stopping, correction semantics, object bookkeeping and memory bounds.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_sam2_track.engine import SessionBusyError, TrackingSession, new_inference_state
from napari_sam2_track.model_input import ModelFrames
from napari_sam2_track.predictor import build_model
from napari_sam2_track.prompts import PromptError
from napari_sam2_track.results import ObjectMask
from napari_sam2_track.synthetic import make_synthetic_video

IMAGE_SIZE = 128
N_FRAMES = 10


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(image_size=IMAGE_SIZE, random_weights=True, device="cpu")


@pytest.fixture(scope="module")
def video():
    return make_synthetic_video(n_frames=N_FRAMES, height=120, width=160, n_objects=2)


@pytest.fixture
def session(model, video):
    return TrackingSession(video.frames, model)


def _obj_idx(session, obj_id):
    return session._state["obj_id_to_idx"][obj_id]


def _rles(session, frames, obj_id=1):
    return {f: session.results.get(f, obj_id).rle["counts"] for f in frames}


def test_points_reach_sam2_state_in_xy_order_on_their_frame(session):
    session.set_prompt(3, 1, points=[(150.0, 20.0), (10.0, 110.0)], labels=[1, 0])
    inputs = session._state["point_inputs_per_obj"][_obj_idx(session, 1)]
    assert list(inputs) == [3]
    scale = torch.tensor([IMAGE_SIZE / 160, IMAGE_SIZE / 120])
    expected = torch.tensor([[150.0, 20.0], [10.0, 110.0]]) * scale
    torch.testing.assert_close(inputs[3]["point_coords"][0], expected)
    assert inputs[3]["point_labels"][0].tolist() == [1, 0]


def test_replacing_a_frames_points_replaces_them_in_sam2(session):
    session.set_prompt(2, 1, points=[(10, 10), (20, 20)], labels=[1, 1])
    session.set_prompt(2, 1, points=[(30, 40)], labels=[0])
    inputs = session._state["point_inputs_per_obj"][_obj_idx(session, 1)][2]
    assert inputs["point_labels"][0].tolist() == [0]
    assert session.prompts.get(2, 1).points.tolist() == [[30, 40]]


def test_box_prompt_goes_first_as_sam2_corner_labels(session):
    session.set_prompt(1, 4, box=(20, 30, 60, 90), points=[(40, 50)], labels=[1])
    inputs = session._state["point_inputs_per_obj"][_obj_idx(session, 4)][1]
    assert inputs["point_labels"][0].tolist() == [2, 3, 1]
    corners = inputs["point_coords"][0][:2] / torch.tensor([IMAGE_SIZE / 160, IMAGE_SIZE / 120])
    torch.testing.assert_close(corners, torch.tensor([[20.0, 30.0], [60.0, 90.0]]))


def test_mask_prompt_replaces_points_on_that_frame(session, video):
    session.set_prompt(5, 1, points=[(10, 10)], labels=[1])
    session.set_mask_prompt(5, 1, video.labels[5] == 1)
    idx = _obj_idx(session, 1)
    assert 5 in session._state["mask_inputs_per_obj"][idx]
    assert 5 not in session._state["point_inputs_per_obj"][idx]
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
    # The stopped run left its start dirty, so the next one redoes it completely.
    assert [f for f, _ in session.propagate()] == list(range(N_FRAMES))


def test_closing_the_generator_releases_the_session(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    run = session.propagate()
    next(run)
    run.close()
    assert not session.propagating
    session.set_prompt(1, 1, points=[(50, 40)], labels=[1])


def test_prompts_cannot_change_during_a_propagation(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    run = session.propagate()
    next(run)
    with pytest.raises(SessionBusyError, match="while propagating"):
        session.set_prompt(2, 1, points=[(40, 40)], labels=[1])
    with pytest.raises(SessionBusyError, match="already running"):
        session.propagate()
    run.close()


def test_forward_correction_leaves_earlier_frames_byte_identical(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    list(session.propagate())
    before = _rles(session, range(6))
    session.set_prompt(6, 1, points=[(100, 80), (30, 30)], labels=[1, 0])
    state = session._state["output_dict_per_obj"][_obj_idx(session, 1)]
    assert [f for f, _ in session.propagate()] == [6, 7, 8, 9]
    assert _rles(session, range(6)) == before
    # The correction stays a conditioning frame, so later runs keep it.
    assert 6 in state["cond_frame_outputs"]


def test_backward_correction_leaves_later_frames_byte_identical(session):
    session.set_prompt(9, 1, points=[(40, 40)], labels=[1])
    list(session.propagate("backward"))
    after = _rles(session, range(5, 10))
    session.set_prompt(4, 1, points=[(100, 80)], labels=[1])
    assert [f for f, _ in session.propagate("backward")] == [4, 3, 2, 1, 0]
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
    assert session._state["obj_ids"] == [1]
    assert session.prompts.object_ids() == [1]
    assert all(sorted(m) == [1] for _, m in session.propagate("forward", start=0, end=3))


def test_clearing_prompts_downgrades_then_drops_the_object_in_sam2(session):
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    session.set_prompt(4, 1, points=[(60, 40)], labels=[1])
    session.clear_prompt(4, 1)
    assert session.prompts.frames(1) == [0]
    assert list(session._state["point_inputs_per_obj"][_obj_idx(session, 1)]) == [0]
    assert session.results.get(4, 1) is None
    session.set_prompt(0, 1)  # no points and no box: the same as clearing
    assert 1 not in session._state["obj_id_to_idx"]
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
    assert session._state["obj_ids"] == []


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


def test_inference_state_has_the_keys_sam2s_own_init_state_makes(model, tmp_path):
    import imageio.v3 as iio

    for i in range(2):
        iio.imwrite(tmp_path / f"{i}.jpg", np.full((32, 48, 3), 128, np.uint8))
    theirs = model.predictor.init_state(str(tmp_path))
    ours = new_inference_state(
        model.predictor, ModelFrames(np.zeros((2, 32, 48, 3), np.uint8), IMAGE_SIZE), model.device
    )
    assert set(ours) == set(theirs)
    assert ours["images"][0].shape == theirs["images"][0].shape


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
    assert list(again._state["point_inputs_per_obj"][_obj_idx(again, 1)]) == [0]
    assert {f: again.results.get(f, 1).rle["counts"] for f in range(N_FRAMES)} == stored
    again.set_prompt(7, 1, points=[(90, 50)], labels=[1])
    assert [f for f, _ in again.propagate()] == [7, 8, 9]


def _spy_frame_inference(session, monkeypatch) -> list[dict]:
    """What SAM 2's single-frame inference is called with, call by call."""
    predictor = session.model.predictor
    calls = []
    original = predictor._run_single_frame_inference

    def spy(*args, **kwargs):
        # The tracked frames whose memory SAM 2 holds for the object as it runs the frame.
        held = sorted(kwargs["output_dict"]["non_cond_frame_outputs"])
        calls.append({**kwargs, "held_memory": held})
        return original(*args, **kwargs)

    monkeypatch.setattr(predictor, "_run_single_frame_inference", spy)
    return calls


def _previous_logits(call: dict):
    """The previous mask logits SAM 2's decoder got in a call (None: clicks alone)."""
    return call.get("prev_sam_mask_logits")


def _as_low_res_logits(mask: np.ndarray) -> torch.Tensor:
    size = IMAGE_SIZE // 4
    coverage = torch.nn.functional.interpolate(
        torch.from_numpy(mask)[None, None].float(), size=(size, size), mode="area"
    )
    return coverage * 20 - 10


def test_a_correction_where_sam2_dropped_its_output_refines_the_stored_mask(model, monkeypatch):
    video = make_synthetic_video(n_frames=30, height=64, width=80, n_objects=1)
    session = TrackingSession(video.frames, model)
    session.set_prompt(0, 1, points=[(30, 30)], labels=[1])
    list(session.propagate())
    outputs = session._state["output_dict_per_obj"][_obj_idx(session, 1)]
    assert 2 not in outputs["non_cond_frame_outputs"]  # forgotten: the video is long
    stored = session.results.get(2, 1).mask
    calls = _spy_frame_inference(session, monkeypatch)

    session.set_prompt(2, 1, points=[(40, 20)], labels=[0])

    torch.testing.assert_close(_previous_logits(calls[-1]), _as_low_res_logits(stored))
    temp = session._state["temp_output_dict_per_obj"][_obj_idx(session, 1)]
    # SAM 2's output replaced the stand-in (corrected frames become conditioning frames).
    assert "obj_ptr" in temp["cond_frame_outputs"][2]
    # A frame SAM 2 still holds uses SAM 2's own logits, untouched.
    session.set_prompt(29, 1, points=[(40, 20)], labels=[1])
    held = outputs["non_cond_frame_outputs"][29]["pred_masks"]
    torch.testing.assert_close(_previous_logits(calls[-1]), held.clamp(-32, 32))


def test_a_correction_in_a_restored_session_refines_the_stored_mask(model, video, monkeypatch):
    first = TrackingSession(video.frames, model)
    first.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    square = np.zeros((120, 160), dtype=bool)
    square[30:90, 40:120] = True  # as if painted by hand before saving
    first.results.set(5, 1, ObjectMask.from_mask(square))

    again = TrackingSession(video.frames, model)
    again.restore(first.prompts, first.results)
    calls = _spy_frame_inference(again, monkeypatch)
    again.set_prompt(5, 1, points=[(60, 60)], labels=[1])
    torch.testing.assert_close(_previous_logits(calls[-1]), _as_low_res_logits(square))
    # A frame with nothing stored starts from the clicks alone, as in SAM 2.
    again.set_prompt(8, 2, points=[(60, 60)], labels=[1])
    assert _previous_logits(calls[-1]) is None


def _paint_squares(session, frames, obj_id=1) -> dict[int, np.ndarray]:
    """A different square on each frame, stored as if the person had kept it."""
    squares = {}
    for i, frame in enumerate(frames):
        square = np.zeros((session.height, session.width), dtype=bool)
        square[4 + 2 * i : 28 + 2 * i, 8 + 3 * i : 40 + 3 * i] = True
        session.results.set(frame, obj_id, ObjectMask.from_mask(square))
        squares[frame] = square
    return squares


def _low_res(mask: np.ndarray) -> np.ndarray:
    return (_as_low_res_logits(mask) > 0)[0, 0].numpy()


def _recalled(outputs: dict, frame: int) -> np.ndarray:
    return (outputs["non_cond_frame_outputs"][frame]["pred_masks"] > 0)[0, 0].numpy()


@pytest.mark.parametrize("reverse", [False, True])
def test_a_correction_gets_back_the_memory_sam2_reads_before_it(model, reverse, monkeypatch):
    """A click on a frame far behind the last tracked one is read against the memory of
    the frames before it (after it, tracking backward), encoded again from their stored
    masks, and no further back than SAM 2 reads."""
    video = make_synthetic_video(n_frames=30, height=64, width=80, n_objects=1)
    session = TrackingSession(video.frames, model)
    session.set_prompt(29 if reverse else 0, 1, points=[(30, 30)], labels=[1])
    list(session.propagate("backward" if reverse else "forward"))
    outputs = session._state["output_dict_per_obj"][_obj_idx(session, 1)]
    window, fix = session.mask_memory_window, 21 if reverse else 8
    before = [fix + k if reverse else fix - k for k in range(1, window + 1)]
    assert not set(before) & set(outputs["non_cond_frame_outputs"])  # forgotten
    squares = _paint_squares(session, before)

    session.set_prompt(fix, 1, points=[(40, 20)], labels=[0])

    held = outputs["non_cond_frame_outputs"]
    beyond = before[-1] + (1 if reverse else -1)
    assert set(before) <= set(held) and beyond not in held
    for frame in before:
        assert held[frame]["maskmem_features"] is not None
        agree = np.mean(_recalled(outputs, frame) == _low_res(squares[frame]))
        assert agree > 0.97, (frame, agree)
    # Now held, they are not encoded again for the propagation from the correction.
    calls = _spy_frame_inference(session, monkeypatch)
    tracked = [f for f, _ in session.propagate("backward" if reverse else "forward")]
    assert tracked == (list(range(fix, -1, -1)) if reverse else list(range(fix, 30)))
    assert [c["frame_idx"] for c in calls if c["mask_inputs"] is not None] == []


def test_a_restored_session_recalls_memory_before_it_tracks_on(model, video):
    first = TrackingSession(video.frames, model)
    first.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    list(first.propagate())

    again = TrackingSession(video.frames, model)
    again.restore(first.prompts, first.results)
    outputs = again._state["output_dict_per_obj"][_obj_idx(again, 1)]
    assert not outputs["non_cond_frame_outputs"]  # only the prompted frame was replayed
    squares = _paint_squares(again, [3, 4, 5])
    frames = again.propagate(start=6)
    assert next(frames)[0] == 6
    frames.close()
    for frame, square in squares.items():
        assert np.mean(_recalled(outputs, frame) == _low_res(square)) > 0.97


def _square(session) -> np.ndarray:
    square = np.zeros((session.height, session.width), dtype=bool)
    square[20:50, 30:70] = True
    return square


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("supersede", [True, False])
def test_tracking_past_a_prompt_that_finds_the_object_reads_no_memory_behind_it(
    model, video, reverse, supersede, monkeypatch
):
    """The tracked frames before a correction drifted: the frames after it read the
    prompted frames and what was tracked since, unless the session is told otherwise."""
    session = TrackingSession(video.frames, model, prompts_supersede_memory=supersede)
    direction = "backward" if reverse else "forward"
    first, fix = (N_FRAMES - 1, 4) if reverse else (0, 5)
    session.set_prompt(first, 1, points=[(40, 40)], labels=[1])
    list(session.propagate(direction))
    session.set_mask_prompt(fix, 1, _square(session))  # SAM 2 takes a mask as found
    calls = _spy_frame_inference(session, monkeypatch)

    tracked = [f for f, _ in session.propagate(direction)]

    assert tracked[0] == fix
    behind = [t for t in range(N_FRAMES) if (t > fix if reverse else t < fix)]
    read = {c["frame_idx"]: set(c["held_memory"]) & set(behind) for c in calls}
    assert sorted(read) == sorted(tracked[1:])
    if supersede:
        assert all(not frames for frames in read.values()), read
    else:
        assert read[tracked[1]] == set(behind) - {first}  # the prompted frame is apart


def test_a_prompt_that_finds_no_object_keeps_the_memory_behind_it(model, video, monkeypatch):
    """An emptied mask says where the object is not, not what it looks like."""
    session = TrackingSession(video.frames, model)
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    list(session.propagate())
    empty = np.zeros((session.height, session.width), dtype=bool)
    session.set_mask_prompt(5, 1, empty)
    calls = _spy_frame_inference(session, monkeypatch)
    list(session.propagate())
    assert {1, 2, 3, 4} <= set(calls[0]["held_memory"]) and calls[0]["frame_idx"] == 6


def test_a_click_past_a_prompt_reads_and_recalls_no_memory_behind_it(model, monkeypatch):
    """A click reads the memory that tracking on from there would: a later click does
    not read, or encode again, the frames behind an earlier prompt that found the
    object."""
    video = make_synthetic_video(n_frames=30, height=64, width=80, n_objects=1)
    session = TrackingSession(video.frames, model)
    session.set_prompt(0, 1, points=[(30, 30)], labels=[1])
    list(session.propagate())
    session.set_mask_prompt(8, 1, _square(session))  # reads (and recalls) 7 back to 2
    outputs = session._state["output_dict_per_obj"][_obj_idx(session, 1)]
    assert {2, 3, 4, 5, 6, 7} <= set(outputs["non_cond_frame_outputs"])
    calls = _spy_frame_inference(session, monkeypatch)

    session.set_prompt(11, 1, points=[(40, 20)], labels=[0])

    recalled = [c["frame_idx"] for c in calls if c["mask_inputs"] is not None]
    assert recalled == [10, 9]
    click = calls[-1]
    assert click["frame_idx"] == 11
    assert [t for t in click["held_memory"] if t < 11] == [9, 10]
