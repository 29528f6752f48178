"""SAM 2's side of tracking: its inference state, memory recall and pruning, and the
host process left as it was. These tests may read SAM 2's state; no other test does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.model_input import ModelFrames
from napari_sam2_track.results import ObjectMask
from napari_sam2_track.sam2_backend.state import new_inference_state
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


def _state(session) -> dict:
    return session.tracker._state


def _obj_idx(session, obj_id):
    return _state(session)["obj_id_to_idx"][obj_id]


def test_inference_state_has_the_keys_sam2s_own_init_state_makes(model, tmp_path):
    import imageio.v3 as iio

    for i in range(2):
        iio.imwrite(tmp_path / f"{i}.jpg", np.full((32, 48, 3), 128, np.uint8))
    theirs = model.predictor.init_state(str(tmp_path))
    ours = new_inference_state(
        ModelFrames(np.zeros((2, 32, 48, 3), np.uint8), IMAGE_SIZE), model.device
    )
    assert set(ours) == set(theirs)
    assert ours["images"][0].shape == theirs["images"][0].shape


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
    outputs = _state(session)["output_dict_per_obj"][_obj_idx(session, 1)]
    assert 2 not in outputs["non_cond_frame_outputs"]  # forgotten: the video is long
    stored = session.results.get(2, 1).mask
    calls = _spy_frame_inference(session, monkeypatch)

    session.set_prompt(2, 1, points=[(40, 20)], labels=[0])

    torch.testing.assert_close(_previous_logits(calls[-1]), _as_low_res_logits(stored))
    temp = _state(session)["temp_output_dict_per_obj"][_obj_idx(session, 1)]
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
    outputs = _state(session)["output_dict_per_obj"][_obj_idx(session, 1)]
    window, fix = session.tracker.mask_memory_window, 21 if reverse else 8
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
    run = session.propagate("backward" if reverse else "forward", until="end")
    tracked = [f for f, _ in run]
    assert tracked == (list(range(fix, -1, -1)) if reverse else list(range(fix, 30)))
    assert [c["frame_idx"] for c in calls if c["mask_inputs"] is not None] == []


def test_a_restored_session_recalls_memory_before_it_tracks_on(model, video):
    first = TrackingSession(video.frames, model)
    first.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    list(first.propagate())

    again = TrackingSession(video.frames, model)
    again.restore(first.prompts, first.results)
    outputs = _state(again)["output_dict_per_obj"][_obj_idx(again, 1)]
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
    outputs = _state(session)["output_dict_per_obj"][_obj_idx(session, 1)]
    assert {2, 3, 4, 5, 6, 7} <= set(outputs["non_cond_frame_outputs"])
    calls = _spy_frame_inference(session, monkeypatch)

    session.set_prompt(11, 1, points=[(40, 20)], labels=[0])

    recalled = [c["frame_idx"] for c in calls if c["mask_inputs"] is not None]
    assert recalled == [10, 9]
    click = calls[-1]
    assert click["frame_idx"] == 11
    assert [t for t in click["held_memory"] if t < 11] == [9, 10]


def _host_state() -> dict:
    import sam2.sam2_video_predictor
    import sam2.utils.misc

    modules = (sam2.sam2_video_predictor, sam2.utils.misc)
    return {
        "sam2": {(m.__name__, k): v for m in modules for k, v in vars(m).items()},
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn": (torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark),
    }


def test_building_and_tracking_leave_sam2_and_torch_as_the_host_had_them(video):
    import sam2.sam2_video_predictor  # noqa: F401

    before = _host_state()
    from napari_sam2_track.sam2_backend import build_model

    built = build_model(image_size=IMAGE_SIZE, random_weights=True, device="cpu")
    session = TrackingSession(video.frames, built)
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    run = session.propagate()
    next(run)
    during = _host_state()
    run.close()
    assert _host_state() == before
    # Between two frames no sam2 call runs, so nothing is patched then either.
    assert during == before


def test_sam2_runs_its_calls_with_the_patches_they_need(model):
    import sam2.sam2_video_predictor as video_predictor
    import sam2.utils.misc as misc

    from napari_sam2_track.sam2_backend.hole_filling import connected_components

    host_tqdm = video_predictor.tqdm
    with model.calls(), model.calls():  # nested and left in turn, as threads may
        assert video_predictor.tqdm is not host_tqdm
        assert misc.get_connected_components is connected_components
    assert video_predictor.tqdm is host_tqdm
    assert misc.get_connected_components is not connected_components


def test_a_propagation_draws_no_progress_bar_of_sams_own(session_factory, capfd):
    session = session_factory()
    session.set_prompt(0, 1, points=[(40, 40)], labels=[1])
    list(session.propagate())
    assert "propagate in video" not in capfd.readouterr().err


@pytest.fixture
def session_factory(model, video):
    return lambda: TrackingSession(video.frames, model)


@pytest.mark.parametrize(
    ("version", "untested"), [("1.1.0", False), ("1.1.7", False), ("1.2.0", True), ("0.4.1", True)]
)
def test_an_untested_sam2_version_is_named_with_the_range_to_install(version, untested):
    from napari_sam2_track.sam2_backend.compat import SAM2_RANGE, sam2_version_problem

    problem = sam2_version_problem(version)
    assert (problem is not None) == untested
    if untested:
        assert version in problem and f"pip install 'sam2{SAM2_RANGE}'" in problem


def test_the_declared_sam2_range_is_the_one_the_backend_was_tested_with():
    from pathlib import Path

    from napari_sam2_track.sam2_backend.compat import SAM2_RANGE

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert f'"sam2{SAM2_RANGE}"' in pyproject
