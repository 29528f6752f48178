"""Tracking one video into a session folder, as ``track`` and each batch task do: saves
while tracking, what counts as nothing to do, and a failure mid-video."""

from __future__ import annotations

import pytest

from napari_sam2_track.annotation_model import AnnotationModel
from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.store import load_session, session_version
from napari_sam2_track.tracking_run import ModelOptions, TrackOptions, track_video
from napari_sam2_track.video import open_video
from napari_sam2_track.video_ref import VideoRef

from conftest import RANDOM_MODEL_SIZE, SHAPES_FRAMES


@pytest.fixture
def run(shapes_video, random_model, tmp_path):
    """``track_video`` on the shapes video with the in-process random model."""

    def track(prompts, out, **options):
        hooks = {k: options.pop(k) for k in ("on_frame", "on_save") if k in options}
        return track_video(
            shapes_video,
            prompts,
            out,
            ModelOptions(device="cpu", image_size=RANDOM_MODEL_SIZE),
            TrackOptions(**options),
            load_model=lambda *_: random_model,
            **hooks,
        )

    return track


def write_prompts(path, frame=2):
    path.write_text(f"frame,obj_id,x,y,label\n{frame},1,40,60,1\n")
    return path


def test_a_run_saves_as_it_tracks_and_whole_at_the_end(run, tmp_path):
    out = tmp_path / "s"
    seen = []

    def on_save(done):
        saved = load_session(out)
        seen.append((done, saved.results.frames_of(1), saved.pending_frames))

    outcome = run(write_prompts(tmp_path / "p.csv", 0), out, save_every_s=0.0, on_save=on_save)
    assert outcome.status == "done" and outcome.frames == SHAPES_FRAMES
    done, frames, pending = seen[0]
    assert frames == list(range(done)) and pending == [done]  # goes on from there
    assert len(seen) >= 2
    assert load_session(out).pending_frames == []


def test_a_finished_range_is_nothing_to_do_unless_ranges_retrack(run, tmp_path):
    prompts, out = write_prompts(tmp_path / "p.csv", frame=2), tmp_path / "s"
    ranged = dict(start=0, end=7, retrack_range=False)
    assert run(prompts, out, **ranged).frames == 6  # frames 2-7: forward from the prompt
    version = session_version(out)
    assert run(prompts, out, **ranged).status == "skipped"  # 0 and 1 are not its to track
    assert session_version(out) == version
    assert run(prompts, out, **{**ranged, "end": 9}).frames > 0  # frames 8, 9 never tracked
    assert run(prompts, out, start=0, end=9).status == "done"  # track's own: a range re-tracks


def test_a_session_tracked_over_part_of_the_video_is_not_taken_as_done(
    run, tmp_path, shapes_video, random_model
):
    frames = open_video(shapes_video)  # as napari leaves it after propagating frames 0-4
    session = TrackingSession(frames, random_model)
    session.set_prompt(0, 1, points=[(40, 60)], labels=[1])
    list(session.propagate(end=4))
    first = tmp_path / "first"
    AnnotationModel(session, VideoRef.from_source(frames)).save(first)
    assert load_session(first).pending_frames == []

    outcome = run(first, tmp_path / "all")
    assert outcome.status == "done" and outcome.frames > 0
    assert load_session(tmp_path / "all").results.frames_of(1) == list(range(SHAPES_FRAMES))


def test_a_failure_mid_video_keeps_the_frames_before_it(run, tmp_path):
    out = tmp_path / "s"

    def fail_at_frame_four(done, total):
        if done == 4:
            raise RuntimeError("the disk went away")

    with pytest.raises(RuntimeError, match="the disk went away"):
        run(write_prompts(tmp_path / "p.csv", 0), out, on_frame=fail_at_frame_four)
    saved = load_session(out)
    assert saved.results.frames_of(1) == [0, 1, 2, 3]
    assert saved.pending_frames == [4]
    assert run(write_prompts(tmp_path / "p.csv", 0), out).frames == SHAPES_FRAMES - 4
