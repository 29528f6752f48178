"""Bad input, each refused with one sentence before any long work, and saved work kept:
output paths, numbers that must be whole, truncated videos, tampered session folders and
a disk that fills up at the end."""

from __future__ import annotations

import errno
import gzip
import json
import os

import numpy as np
import pytest

from napari_sam2_track import cli, store
from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.prompts import FramePrompt, PromptError
from napari_sam2_track.store import MANIFEST, StoreError, load_session, save_session
from napari_sam2_track.video import open_video
from test_cli import write_csv
from test_store import make_annotation

from conftest import counting_frames, run_ffmpeg, write_video

NOWHERE = "/nonexistent/weights.pt"  # a model that fails to load: checks must come first


def run_cli(capsys, *args) -> tuple[int, list[str]]:
    status = cli.main([str(a) for a in args])
    return status, capsys.readouterr().err.strip().splitlines()


def track_args(video, prompts, out, *extra):
    return ("track", video, "--prompts", prompts, "--out", out, "--checkpoint", NOWHERE, *extra)


# ------------------------------------------------------------------------ output paths


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("an existing file", "is a file; a session is a folder"),
        ("a parent that is a file", "is a file, not a folder"),
        ("a name too long", "is too long for a file or folder"),
        ("a folder of other things", "is not a session folder and is not empty"),
        ("data without a manifest", "holds session data but no session.json"),
    ],
)
def test_a_bad_out_is_one_sentence_before_the_model_loads(
    tmp_path,
    shapes_video,
    capsys,
    case,
    message,
):
    prompts = write_csv(tmp_path / "p.csv", [(0, 1, 40, 60, 1)])
    out = tmp_path / "s"
    if case == "an existing file":
        out.write_text("keep me")
    elif case == "a parent that is a file":
        (tmp_path / "f").write_text("keep me")
        out = tmp_path / "f" / "s"
    elif case == "a name too long":
        out = tmp_path / ("s" * 300)
    elif case == "a folder of other things":
        out.mkdir()
        (out / "notes.txt").write_text("keep me")
    elif case == "data without a manifest":
        save_session(out, make_annotation(), expected_version=None)
        (out / MANIFEST).unlink()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    status, lines = run_cli(capsys, *track_args(shapes_video, prompts, out))
    assert status == 1 and len(lines) == 1 and message.lower() in lines[0].lower(), lines
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_a_read_only_out_is_one_sentence(tmp_path, shapes_video, capsys):
    prompts = write_csv(tmp_path / "p.csv", [(0, 1, 40, 60, 1)])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    status, lines = run_cli(capsys, *track_args(shapes_video, prompts, locked / "s"))
    assert status == 1 and "cannot be written to" in lines[0]


def test_a_session_that_cannot_be_saved_at_the_end_is_saved_elsewhere_and_said(
    tmp_path,
    shapes_video,
    random_checkpoint,
    capsys,
    monkeypatch,
):
    monkeypatch.setenv("NAPARI_SAM2_TRACK_AUTOSAVE", str(tmp_path / "data" / "autosave"))
    out = tmp_path / "s"
    common = ["--checkpoint", random_checkpoint, "--image-size", 128, "--device", "cpu"]
    first = write_csv(tmp_path / "p.csv", [(0, 1, 40, 60, 1)])
    assert (
        run_cli(capsys, "track", shapes_video, "--prompts", first, "--out", out, *common)[0] == 0
    )
    saved = load_session(out)
    version = store.session_version(out)

    write = store._write

    def full_disk(path, payload):
        if out in path.parents:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return write(path, payload)

    monkeypatch.setattr(store, "_write", full_disk)
    more = write_csv(tmp_path / "q.csv", [(0, 1, 40, 60, 1), (5, 2, 100, 60, 1)])
    status, lines = run_cli(
        capsys, "track", shapes_video, "--prompts", more, "--out", out, *common
    )
    assert status == 1
    assert "could not be written (no space left on device)" in lines[-1]
    rescued = tmp_path / "data" / "recovered"
    (folder,) = rescued.iterdir()
    assert str(folder) in lines[-1]
    assert load_session(folder).results.frames_of(2)  # the new object's frames are kept
    # The session folder still holds its previous version, whole and alone.
    assert store.session_version(out) == version
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, version, ".lock"])
    assert load_session(out).results.frames() == saved.results.frames()


# ------------------------------------------------------------------- whole numbers only


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((0.4, 1, 40, 60, 1), "'0.4' is not a whole number"),
        ((0, 1, 40, 60, 0.7), "'0.7' is not a whole number"),
        ((0, 0, 40, 60, 1), "object ids run from 1 to 65535; 0 is not one"),
        ((0, -3, 40, 60, 1), "-3 is not one"),
        ((0, 65536, 40, 60, 1), "65536 is not one"),
        ((0, 2**53 + 1, 40, 60, 1), f"{2**53 + 1} is not one"),  # not rounded through a float
        ((0, 2**70, 40, 60, 1), f"{2**70} is not one"),  # beyond int64 too
        ((0, 1, 40, 60, 2), "point labels must be 1 (on the object) or 0"),
    ],
)
def test_prompt_csv_numbers_must_be_whole_and_in_range(
    tmp_path,
    shapes_video,
    capsys,
    row,
    message,
):
    prompts = write_csv(tmp_path / "p.csv", [row])
    status, lines = run_cli(capsys, *track_args(shapes_video, prompts, tmp_path / "s"))
    assert status == 1 and len(lines) == 1 and message.lower() in lines[0].lower(), lines
    assert not (tmp_path / "s").exists()


def test_an_image_size_of_zero_is_refused_not_taken_as_the_default(
    tmp_path,
    shapes_video,
    capsys,
):
    prompts = write_csv(tmp_path / "p.csv", [(0, 1, 40, 60, 1)])
    status, lines = run_cli(
        capsys, *track_args(shapes_video, prompts, tmp_path / "s", "--image-size", 0)
    )
    assert status == 1 and "Image size 0 must be a multiple of 32" in lines[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"points": [[100, 20, 30], [40, 50, 60]], "labels": [1, 1]}, "not an array of shape"),
        ({"points": [(10, 20)], "labels": [0.7]}, "must be 1 (on the object) or 0"),
        ({"points": [(10, np.nan)], "labels": [1]}, "not a finite number"),
        ({"box": (1, 2, np.nan, 4)}, "four finite numbers"),
        ({"box": (1, 2, 3)}, "four finite numbers"),
    ],
)
def test_a_prompt_is_refused_rather_than_reshaped_or_rounded(kwargs, message):
    with pytest.raises(PromptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FramePrompt(**kwargs)


@pytest.fixture(scope="module")
def api_session(random_model):
    return TrackingSession(counting_frames(4), random_model)


@pytest.mark.parametrize(
    ("frame", "obj_id", "message"),
    [
        (2.9, 1, "a frame must be a whole number, not 2.9"),
        (True, 1, "a frame must be a whole number"),
        (1, 0, "object ids run from 1 to 65535; 0 is not one"),
        (1, 70000, "70000 is not one"),
        (1, 1.5, "an object id must be a whole number"),
    ],
)
def test_frames_and_object_ids_through_the_api_are_whole_and_in_range(
    api_session, frame, obj_id, message
):
    with pytest.raises(PromptError, match=message):
        api_session.set_prompt(frame, obj_id, points=[(10, 10)], labels=[1])
    assert api_session.prompts.frames() == []


# ---------------------------------------------------------------------- truncated videos


def test_a_truncated_video_opens_with_a_warning_saying_so(tmp_path):
    whole = tmp_path / "whole.mp4"
    source = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-frames:v", "100"]
    run_ffmpeg(*source, "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(whole))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 3 // 5])
    video = open_video(cut)
    (warning,) = video.warnings
    assert "cut.mp4 appears to be truncated or damaged" in warning
    assert f"announces 100 frames but only {len(video)} frames could be read" in warning
    assert 0 < len(video) < 100
    assert open_video(whole).warnings == []
    np.asarray(video[len(video) - 1])  # the frames it counts all decode


def test_a_whole_video_of_any_rate_has_no_warning(tmp_path):
    path = write_video(tmp_path / "v.mp4", counting_frames(30), fps=29.97)
    assert open_video(path).warnings == []


# -------------------------------------------------------------- tampered session folders


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m["video"].update(n_frames="many"),
        lambda m: m["video"].update(height=-4),
        lambda m: m.update(objects=[{"id": "one", "name": "cup"}]),
        lambda m: m.update(objects=[{"id": 2.5}]),
        lambda m: m.update(pending_frames=[1.5]),
        lambda m: m.update(files={"masks/00000000.json.gz": "big"}),
        lambda m: m.update(video=["not", "a", "dict"]),
        lambda m: m.update(data="../elsewhere"),
    ],
)
def test_a_tampered_manifest_is_one_sentence_naming_the_file(tmp_path, capsys, tamper):
    folder = tmp_path / "s"
    save_session(folder, make_annotation(), expected_version=None)
    manifest = json.loads((folder / MANIFEST).read_text())
    tamper(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=MANIFEST):
        load_session(folder)
    status, lines = run_cli(capsys, "export", folder, "--format", "coco", "--out", tmp_path / "c")
    assert status == 1 and len(lines) == 1 and MANIFEST in lines[0], lines


def shown_frames(annotation, frames) -> set[int]:
    """The frames of ``frames`` where some object has a mask."""
    return {f for f in frames if any(not e.empty for e in annotation.results.frame(f).values())}


def chunk_path(folder):
    manifest = json.loads((folder / MANIFEST).read_text())
    return folder / manifest["data"] / store.MASKS_FOLDER / "00000000.json.gz", manifest


def test_a_garbled_chunk_is_skipped_with_a_sentence_and_the_rest_exports(tmp_path, capsys):
    folder, saved = tmp_path / "s", make_annotation(n_frames=150)
    save_session(folder, saved, expected_version=None)
    chunk, _ = chunk_path(folder)
    packed = chunk.read_bytes()
    chunk.write_bytes(packed[:10] + bytes(b ^ 0x5A for b in packed[10:]))  # same size
    out = tmp_path / "c.json"
    status, lines = run_cli(capsys, "export", folder, "--format", "coco", "--out", out)
    assert status == 0
    assert any("the masks in 00000000.json.gz are damaged and were skipped" in li for li in lines)
    frames = {a["image_id"] - 1 for a in json.loads(out.read_text())["annotations"]}
    assert frames == shown_frames(saved, range(100, 150))


def test_masks_that_do_not_fit_the_video_are_refused_not_exported(tmp_path, capsys):
    folder, saved = tmp_path / "s", make_annotation(n_frames=150)
    save_session(folder, saved, expected_version=None)
    chunk, manifest = chunk_path(folder)
    masks = json.loads(gzip.decompress(chunk.read_bytes()))
    small = store.rle_json(store.encode_mask(np.ones((10, 10), bool)))
    for objects in masks.values():
        for entry in objects.values():
            entry["rle"] = small
    payload = gzip.compress(json.dumps(masks).encode())
    chunk.write_bytes(payload)
    manifest["files"]["masks/00000000.json.gz"] = len(payload)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "c.json"
    status, lines = run_cli(capsys, "export", folder, "--format", "coco", "--out", out)
    assert status == 0
    assert any("do not fit the video's 64x48 frames" in line for line in lines)
    annotations = json.loads(out.read_text())["annotations"]
    assert {a["image_id"] - 1 for a in annotations} == shown_frames(saved, range(100, 150))
    assert all(a["segmentation"]["size"] == [48, 64] for a in annotations)
