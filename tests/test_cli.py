"""The command line end to end, as a user runs it (in a subprocess)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_sam2_track import cli as cli_module
from napari_sam2_track.prompts import PromptError
from napari_sam2_track.store import load_session

from conftest import SHAPES_FRAMES

N_FRAMES = SHAPES_FRAMES


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_sam2_track.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def track(video, prompts, out, checkpoint, *extra):
    return cli(
        "track",
        video,
        "--prompts",
        prompts,
        "--out",
        out,
        "--checkpoint",
        checkpoint,
        "--image-size",
        128,
        "--device",
        "cpu",
        *extra,
    )


def write_csv(path, rows, header="frame,obj_id,x,y,label"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def test_track_writes_masks_for_exactly_the_frames_asked(tmp_path, bedroom, random_checkpoint):
    prompts = write_csv(
        tmp_path / "p.csv", [(0, 1, 480, 270, 1), (0, 1, 50, 50, 0), (0, 2, 800, 100, 1)]
    )
    result = track(bedroom, prompts, tmp_path / "s", random_checkpoint, "--end", 11)
    assert result.returncode == 0, result.stderr
    assert "Tracked 12 frames" in result.stderr
    assert "tracking: 100%" in result.stderr  # the progress bar
    session = load_session(tmp_path / "s")
    assert session.results.frames() == list(range(12))
    assert all(sorted(session.results.frame(f)) == [1, 2] for f in range(12))
    assert session.model["name"] == "sam2.1_hiera_tiny"
    assert session.model["image_size"] == 128
    np.testing.assert_array_equal(session.prompts.get(0, 1).points, [[480, 270], [50, 50]])


def test_napari_points_csv_drives_the_same_tracking(tmp_path, shapes_video, random_checkpoint):
    import napari
    from napari_builtins.io import napari_write_points

    layer = napari.layers.Points(
        np.array([[2, 60, 40], [2, 90, 120], [2, 10, 10]]),
        features={"label": [1, 1, 0], "obj_id": [1, 2, 1]},
    )
    data, meta, _ = layer.as_layer_data_tuple()
    napari_write_points(str(tmp_path / "napari.csv"), data, meta)  # File > Save Layers
    result = track(
        shapes_video,
        tmp_path / "napari.csv",
        tmp_path / "s",
        random_checkpoint,
        "--direction",
        "both",
    )
    assert result.returncode == 0, result.stderr
    session = load_session(tmp_path / "s")
    assert session.results.frames() == list(range(N_FRAMES))
    prompt = session.prompts.get(2, 1)
    np.testing.assert_array_equal(prompt.points, [[40, 60], [10, 10]])  # (x, y) from (row, col)
    np.testing.assert_array_equal(prompt.labels, [1, 0])


def test_running_again_with_more_prompts_continues_the_session(
    tmp_path, shapes_video, random_checkpoint
):
    first = write_csv(tmp_path / "first.csv", [(0, 1, 40, 60, 1)])
    assert track(shapes_video, first, tmp_path / "s", random_checkpoint).returncode == 0
    before = load_session(tmp_path / "s").results
    early = {f: before.get(f, 1).rle["counts"] for f in range(6)}

    again = track(shapes_video, first, tmp_path / "s", random_checkpoint)
    assert again.returncode == 0 and "Nothing new to track" in again.stderr

    more = write_csv(tmp_path / "more.csv", [(0, 1, 40, 60, 1), (6, 1, 100, 30, 1)])
    result = track(shapes_video, more, tmp_path / "s", random_checkpoint, "--to-end")
    assert result.returncode == 0, result.stderr
    assert "Tracked 6 frames" in result.stderr  # frames 6..11, not the whole video
    after = load_session(tmp_path / "s")
    assert {f: after.results.get(f, 1).rle["counts"] for f in range(6)} == early
    assert after.prompts.frames() == [0, 6]


def test_a_range_run_again_with_a_new_point_leaves_the_frames_before_it(
    tmp_path, shapes_video, random_checkpoint
):
    first = write_csv(tmp_path / "first.csv", [(0, 1, 40, 60, 1)])
    assert (
        track(
            shapes_video, first, tmp_path / "s", random_checkpoint, "--start", 0, "--end", 7
        ).returncode
        == 0
    )
    before = load_session(tmp_path / "s").results
    early = {f: before.get(f, 1).rle["counts"] for f in range(4)}
    more = write_csv(tmp_path / "more.csv", [(0, 1, 40, 60, 1), (4, 1, 100, 30, 1)])
    result = track(shapes_video, more, tmp_path / "s", random_checkpoint, "--start", 0, "--end", 7)
    assert result.returncode == 0, result.stderr
    assert "frames 4–" in result.stderr  # where the new point is, not the range's start
    after = load_session(tmp_path / "s").results
    assert {f: after.get(f, 1).rle["counts"] for f in range(4)} == early
    assert after.frames() == list(range(8))


def test_a_retrack_says_where_it_rejoined_unless_asked_to_go_to_the_end(
    tmp_path, shapes_video, random_checkpoint
):
    prompts = write_csv(tmp_path / "p.csv", [(0, 1, 40, 60, 1)])
    assert track(shapes_video, prompts, tmp_path / "s", random_checkpoint).returncode == 0
    again = track(shapes_video, prompts, tmp_path / "s", random_checkpoint, "--start", 0)
    assert again.returncode == 0, again.stderr
    assert "Re-tracked frames 0–2; the track re-joined at 2." in again.stderr
    assert "tracking: 100%" in again.stderr  # the bar closes complete though it stopped early
    to_end = track(
        shapes_video, prompts, tmp_path / "s", random_checkpoint, "--start", 0, "--to-end"
    )
    assert "Tracked frames 0–11." in to_end.stderr


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing video", "does not exist"),
        ("missing prompts", "could not be read"),
        ("wrong columns", "needs the columns frame,obj_id,x,y,label"),
        ("point off the image", "is outside the 160x120 image"),
        ("frame beyond the end", "Frame 12 does not exist: the video has frames 0 to 11"),
        ("unknown model", "Unknown model 'sam9'"),
        ("bad device", "'gpu0' is not a device"),
    ],
)
def test_bad_input_exits_non_zero_with_one_sentence(
    tmp_path, shapes_video, random_checkpoint, case, message
):
    video, prompts, extra = shapes_video, write_csv(tmp_path / "p.csv", [(0, 1, 40, 60, 1)]), []
    if case == "missing video":
        video = tmp_path / "nope.mp4"
    elif case == "missing prompts":
        prompts = tmp_path / "nope.csv"
    elif case == "wrong columns":
        prompts = write_csv(tmp_path / "w.csv", [(0, 1, 2)], header="t,x,y")
    elif case == "point off the image":
        prompts = write_csv(tmp_path / "o.csv", [(0, 1, 160, 60, 1)])
    elif case == "frame beyond the end":
        prompts = write_csv(tmp_path / "f.csv", [(12, 1, 40, 60, 1)])
    elif case == "unknown model":
        extra = ["--model", "sam9"]
    elif case == "bad device":
        extra = ["--device", "gpu0"]
    result = track(video, prompts, tmp_path / "s", random_checkpoint, *extra)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert not (tmp_path / "s").exists()


def run_failing(monkeypatch, capsys, error: BaseException) -> tuple[int, list[str]]:
    """Run ``models`` in this process with its handler raising ``error``."""

    def fail(args):
        raise error

    monkeypatch.setattr(cli_module, "run_models", fail)
    status = cli_module.main(["models"])
    return status, capsys.readouterr().err.strip().splitlines()


def test_a_user_error_is_one_sentence(monkeypatch, capsys):
    status, lines = run_failing(monkeypatch, capsys, PromptError("the point is off the image."))
    assert status == 1
    assert lines == ["napari-sam2-track: The point is off the image."]


@pytest.mark.parametrize("error", [ZeroDivisionError("division by zero"), ValueError("bad")])
def test_a_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch, capsys, error):
    status, lines = run_failing(monkeypatch, capsys, error)
    assert status == 1
    assert lines[0] == "Traceback (most recent call last):"
    assert f"{type(error).__name__}: {error}" in lines
    assert "please report it" in lines[-1]
    assert cli_module.BUG_TRACKER in lines[-1]


def test_a_file_the_system_refuses_is_one_sentence(monkeypatch, capsys):
    error = PermissionError(13, "Permission denied", "/data/session")
    status, lines = run_failing(monkeypatch, capsys, error)
    assert status == 1
    assert lines == ["napari-sam2-track: /data/session could not be used (permission denied)."]


def test_running_out_of_memory_is_one_sentence(monkeypatch, capsys):
    import torch

    error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    status, lines = run_failing(monkeypatch, capsys, error)
    assert status == 1
    assert len(lines) == 1
    assert "ran out of memory" in lines[0] and "--image-size" in lines[0]


def test_direction_choices_are_the_engines(capsys):
    from napari_sam2_track.propagation import DIRECTIONS

    with pytest.raises(SystemExit):
        cli_module.main(["track", "v.mp4", "--prompts", "p.csv", "--out", "s", "-h"])
    assert "{" + ",".join(DIRECTIONS) + "}" in capsys.readouterr().out


def test_models_lists_each_model_and_whether_it_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_TRACK_CACHE", str(tmp_path))
    (tmp_path / "sam2.1_hiera_small.pt").write_bytes(b"x")
    result = cli("models")
    assert result.returncode == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert "156 MB" in rows["sam2.1_hiera_tiny"]
    assert rows["sam2.1_hiera_small"].split()[3] == "yes"
    assert rows["sam2.1_hiera_tiny"].split()[3] == "no"
    assert f"cache folder: {tmp_path}" in result.stdout


def test_download_offline_names_the_url_and_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_TRACK_CACHE", str(tmp_path))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there
    result = cli("download", "sam2.1_hiera_tiny")
    assert result.returncode == 1
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt" in (
        result.stderr
    )
    assert str(tmp_path / "sam2.1_hiera_tiny.pt") in result.stderr
    assert not list(tmp_path.iterdir())


def test_help_explains_every_track_option():
    result = cli("track", "--help")
    for option in (
        "--prompts",
        "--out",
        "--model",
        "--checkpoint",
        "--device",
        "--image-size",
        "--direction",
        "--start",
        "--end",
        "--to-end",
        "--rejoin-iou",
        "--rejoin-frames",
        "--save-every",
    ):
        assert option in result.stdout


def test_the_feature_cache_budget_reaches_the_session(tmp_path, shapes_video, monkeypatch):
    from napari_sam2_track import tracking_run
    from napari_sam2_track.engine import TrackingSession

    given = []

    def refuse(self, source, model, **kwargs):
        given.append((kwargs.get("feature_cache_bytes"), kwargs.get("features_on_disk")))
        raise PromptError("stopped here.")

    monkeypatch.setattr(tracking_run, "_build_model", lambda *args: None)
    monkeypatch.setattr(TrackingSession, "__init__", refuse)
    prompts = write_csv(tmp_path / "p.csv", [(0, 1, 40, 60, 1)])
    for extra in (
        ["--feature-cache-mb", "64"],
        ["--feature-cache-mb", "0"],
        ["--features-on-disk"],
    ):
        args = [
            "track",
            str(shapes_video),
            "--prompts",
            str(prompts),
            "--out",
            str(tmp_path / "s"),
        ]
        assert cli_module.main([*args, *extra]) == 1
    assert given == [(64 * 2**20, False), (0, False), (None, True)]
    with pytest.raises(SystemExit) as refused:
        cli_module.build_parser().parse_args(
            ["track", "v", "--prompts", "p", "--out", "o", "--feature-cache-mb", "-1"]
        )
    assert refused.value.code == 2


def test_a_session_folder_as_prompts_is_continued_into_a_new_one(
    tmp_path, shapes_video, random_model, random_checkpoint
):
    from napari_sam2_track.annotation_model import AnnotationModel
    from napari_sam2_track.engine import TrackingSession
    from napari_sam2_track.store import ObjectInfo, session_version
    from napari_sam2_track.video import open_video
    from napari_sam2_track.video_ref import VideoRef

    frames = open_video(shapes_video)  # a first pass in napari: a click, no propagation
    session = TrackingSession(frames, random_model)
    session.set_prompt(2, 1, points=[(40, 60)], labels=[1])
    named = {1: ObjectInfo(1, "red square", "square")}
    AnnotationModel(session, VideoRef.from_source(frames), named).save(tmp_path / "first")
    version = session_version(tmp_path / "first")

    out = tmp_path / "tracked"
    result = track(shapes_video, tmp_path / "first", out, random_checkpoint, "--direction", "both")
    assert result.returncode == 0, result.stderr
    assert f"Tracked {N_FRAMES} frames" in result.stderr
    tracked = load_session(out)
    assert tracked.results.frames_of(1) == list(range(N_FRAMES))
    assert tracked.objects == named and tracked.pending_frames == []
    assert session_version(tmp_path / "first") == version  # read, never written


def test_track_from_boxes_alone(tmp_path, shapes_video, random_checkpoint):
    boxes = write_csv(
        tmp_path / "boxes.csv",
        [(0, 1, 20, 40, 60, 80), (3, 2, 90, 20, 130, 60)],
        header="frame,obj_id,x0,y0,x1,y1",
    )
    result = track(shapes_video, boxes, tmp_path / "s", random_checkpoint)
    assert result.returncode == 0, result.stderr
    session = load_session(tmp_path / "s")
    assert session.prompts.get(0, 1).box == (20, 40, 60, 80)
    assert session.prompts.get(3, 2).box == (90, 20, 130, 60)
    assert session.results.frames_of(1) == list(range(N_FRAMES))
    assert set(range(3, N_FRAMES)) <= set(session.results.frames_of(2))


def test_the_speck_options_reach_the_session(tmp_path, shapes_video, monkeypatch):
    from napari_sam2_track import tracking_run
    from napari_sam2_track.engine import TrackingSession
    from napari_sam2_track.specks import DEFAULT_SPECKS, SpeckRule

    given = []

    def refuse(self, source, model, specks, remove_specks, **kwargs):
        given.append((specks, remove_specks))
        raise PromptError("stopped here.")

    monkeypatch.setattr(tracking_run, "_build_model", lambda *args: None)
    monkeypatch.setattr(TrackingSession, "__init__", refuse)
    prompts = write_csv(tmp_path / "p.csv", [(0, 1, 40, 60, 1)])
    args = ["track", str(shapes_video), "--prompts", str(prompts), "--out", str(tmp_path / "s")]
    assert cli_module.main(args) == 1
    assert cli_module.main([*args, "--speck-area", "0", "--remove-specks"]) == 1
    assert cli_module.main([*args, "--speck-gap", "0.5"]) == 1
    assert given == [
        (DEFAULT_SPECKS, False),
        (SpeckRule(0.0, DEFAULT_SPECKS.gap_share), True),
        (SpeckRule(DEFAULT_SPECKS.area_share, 0.5), False),
    ]
