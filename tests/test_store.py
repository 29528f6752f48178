"""The session folder: round trips, atomic saves, lazy masks, refusing the wrong folder."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest

from napari_sam2_track import store
from napari_sam2_track.prompts import FramePrompt, PromptSet
from napari_sam2_track.results import ObjectMask, TrackResults
from napari_sam2_track.store import (
    Annotation,
    ObjectInfo,
    StoreError,
    load_session,
    save_session,
)
from napari_sam2_track.synthetic import make_synthetic_video
from napari_sam2_track.video_ref import VideoRef


def make_video(n_frames=12, seed=0):
    return make_synthetic_video(n_frames=n_frames, height=48, width=64, n_objects=2, seed=seed)


def make_annotation(n_frames=12, seed=0) -> Annotation:
    video = make_video(n_frames, seed)
    results = TrackResults(n_frames, 48, 64)
    for frame in range(n_frames):
        for obj in (1, 2):
            results.set(frame, obj, video.labels[frame] == obj, score=0.5 + 0.01 * frame)
    painted = ObjectMask.from_mask(video.labels[2] > 0, score=0.52, painted=True)
    results.set(2, 1, painted)  # both objects painted over as one
    prompts = PromptSet()
    prompts.set(0, 1, FramePrompt(points=[(10.5, 20.0), (3, 4)], labels=[1, 0]))
    prompts.set(3, 2, FramePrompt(box=(5, 6, 30, 40), points=[(7, 8)], labels=[1]))
    prompts.set(5, 2, FramePrompt(mask=video.labels[5] == 2))
    objects = {1: ObjectInfo(1, "left cup", "cup"), 2: ObjectInfo(2, "hand", "person")}
    model = {"name": "sam2.1_hiera_tiny", "image_size": 256, "checkpoint": None}
    return Annotation(VideoRef.from_source(video.frames), prompts, results, objects, model, [3])


def assert_same(loaded: Annotation, saved: Annotation) -> None:
    assert loaded.video == saved.video
    assert loaded.objects == saved.objects
    assert loaded.model == saved.model
    assert loaded.pending_frames == saved.pending_frames
    assert loaded.prompts.items() == saved.prompts.items()
    assert loaded.results.frames() == saved.results.frames()
    for frame, objects in saved.results:
        assert loaded.results.frame(frame) == objects
    assert loaded.warnings == []


def test_everything_round_trips(tmp_path):
    saved = make_annotation()
    save_session(tmp_path / "s", saved)
    assert_same(load_session(tmp_path / "s", saved.video), saved)


def test_boxes_csv_lists_every_box_with_names(tmp_path):
    saved = make_annotation()
    save_session(tmp_path / "s", saved)
    manifest = json.loads((tmp_path / "s" / store.MANIFEST).read_text())
    lines = (tmp_path / "s" / manifest["data"] / store.BOXES_FILE).read_text().splitlines()
    assert lines[0] == "frame,obj_id,name,class,x0,y0,x1,y1,score"
    x, y, w, h = saved.results.get(4, 2).box
    assert f"4,2,hand,person,{x},{y},{x + w},{y + h},0.5400" in lines
    assert len(lines) - 1 == sum(len(saved.results.boxes(f)) for f in range(12))


def test_masks_load_one_chunk_at_a_time(tmp_path):
    results = TrackResults(250, 8, 8)
    mask = np.zeros((8, 8), bool)
    mask[2:4, 3:6] = True
    for frame in range(250):
        results.set(frame, 1, mask)
    video = VideoRef(None, 250, 8, 8, None, "test")
    save_session(tmp_path / "s", Annotation(video, PromptSet(), results))
    loaded = load_session(tmp_path / "s")
    assert loaded.results.loaded_frames == 0
    assert loaded.results.get(150, 1).box == (3, 2, 3, 2)
    assert loaded.results.loaded_frames == store.CHUNK_FRAMES
    assert loaded.results.frames() == list(range(250))


class _FailAt:
    """Makes the n-th file write or rename of a save fail, as a crash there would."""

    def __init__(self, monkeypatch, n):
        self.n, self.calls = n, 0
        for name, real in (
            ("_write", store._write),
            ("rename", os.rename),
            ("replace", os.replace),
        ):
            target = store if name == "_write" else store.os
            monkeypatch.setattr(target, name, self._wrap(real))

    def _wrap(self, real):
        def step(*args, **kwargs):
            self.calls += 1
            if self.calls == self.n:
                raise OSError("simulated crash")
            return real(*args, **kwargs)

        return step


def test_a_save_interrupted_at_any_step_leaves_the_previous_save(tmp_path, monkeypatch):
    first, second = make_annotation(seed=0), make_annotation(seed=1)
    second.objects[1] = ObjectInfo(1, "renamed", "cup")
    folder = tmp_path / "s"
    save_session(folder, first)
    counter = _FailAt(monkeypatch, n=0)
    save_session(folder, second)
    steps = counter.calls
    assert steps >= 5
    save_session(folder, first)
    for n in range(1, steps + 1):
        with monkeypatch.context() as patch:
            _FailAt(patch, n)
            with pytest.raises(OSError, match="simulated crash"):
                save_session(folder, second)
        assert_same(load_session(folder), first)
    save_session(folder, second)  # and the next save cleans up after the crashes
    assert_same(load_session(folder), second)
    assert len([p for p in folder.iterdir() if p.name.startswith(store.DATA_PREFIX)]) == 1


def test_a_folder_for_another_video_is_refused(tmp_path):
    save_session(tmp_path / "s", make_annotation(seed=0))
    other = make_synthetic_video(n_frames=12, height=48, width=64, seed=5)
    with pytest.raises(StoreError, match="made for another video: the frames differ"):
        load_session(tmp_path / "s", VideoRef.from_source(other.frames))
    shorter = make_synthetic_video(n_frames=7, height=48, width=64, seed=0)
    with pytest.raises(StoreError, match="it has 12 frames of 64x48, the video opened has 7"):
        load_session(tmp_path / "s", VideoRef.from_source(shorter.frames))


def test_a_future_format_is_refused(tmp_path):
    save_session(tmp_path / "s", make_annotation())
    manifest_path = tmp_path / "s" / store.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="format 99 by a newer napari-sam2-track"):
        load_session(tmp_path / "s")


def test_damaged_or_missing_manifest_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is not a session folder"):
        load_session(tmp_path)
    save_session(tmp_path / "s", make_annotation())
    (tmp_path / "s" / store.MANIFEST).write_text('{"format_version": 1, "vid')
    with pytest.raises(StoreError, match="is damaged and cannot be read"):
        load_session(tmp_path / "s")


def test_damaged_mask_chunk_is_skipped_and_the_rest_loads(tmp_path):
    saved = make_annotation(n_frames=230)
    save_session(tmp_path / "s", saved)
    manifest = json.loads((tmp_path / "s" / store.MANIFEST).read_text())
    chunk = tmp_path / "s" / manifest["data"] / store.MASKS_FOLDER / "00000100.json.gz"
    chunk.write_bytes(b"\0" * chunk.stat().st_size)  # same size, garbage inside
    loaded = load_session(tmp_path / "s")
    assert loaded.results.get(150, 1) is None
    assert loaded.results.get(50, 1) == saved.results.get(50, 1)
    assert loaded.results.get(220, 2) == saved.results.get(220, 2)
    assert loaded.warnings == ["the masks in 00000100.json.gz are damaged and were skipped."]
    assert loaded.prompts.items() == saved.prompts.items()


def test_a_painted_mask_stays_painted_and_a_tampered_flag_is_refused(tmp_path):
    saved = make_annotation()
    save_session(tmp_path / "s", saved)
    loaded = load_session(tmp_path / "s")
    assert loaded.results.get(2, 1).painted and not loaded.results.get(2, 2).painted
    assert not loaded.results.get(3, 1).painted

    manifest_path = tmp_path / "s" / store.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    name = f"{store.MASKS_FOLDER}/00000000.json.gz"
    chunk_path = tmp_path / "s" / manifest["data"] / name
    chunk = json.loads(gzip.decompress(chunk_path.read_bytes()))
    chunk["2"]["1"]["painted"] = "yes"
    manifest["files"][name] = chunk_path.write_bytes(gzip.compress(json.dumps(chunk).encode()))
    manifest_path.write_text(json.dumps(manifest))
    loaded = load_session(tmp_path / "s")
    assert loaded.results.get(2, 1) is None
    assert loaded.warnings == ["the masks in 00000000.json.gz are damaged and were skipped."]


def test_truncated_chunk_and_damaged_prompts_are_reported_on_load(tmp_path):
    save_session(tmp_path / "s", make_annotation(n_frames=150))
    manifest = json.loads((tmp_path / "s" / store.MANIFEST).read_text())
    data = tmp_path / "s" / manifest["data"]
    (data / store.MASKS_FOLDER / "00000100.json.gz").write_bytes(b"\x1f\x8b")
    (data / store.PROMPTS_FILE).write_text("{not json")
    loaded = load_session(tmp_path / "s")
    assert len(loaded.warnings) == 2
    assert "prompts.json could not be read" in loaded.warnings[0]
    assert "00000100.json.gz are missing or damaged" in loaded.warnings[1]
    assert len(loaded.prompts) == 0
    assert loaded.results.frames() == list(range(100))


KILLED_IN_FIRST_SAVE = """
import os, sys
sys.path.insert(0, sys.argv[2])
from napari_sam2_track import store
from test_store import make_annotation

def die_at_the_manifest(source, target):
    if str(target).endswith(store.MANIFEST):
        os._exit(9)  # killed: no cleanup runs
    os.rename(source, target)

store.os.replace = die_at_the_manifest
store.save_session(sys.argv[1], make_annotation(), expected_version=None)
"""


def test_a_first_save_killed_before_its_manifest_leaves_a_folder_the_next_run_takes(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    folder = tmp_path / "s"
    tests = str(Path(__file__).parent)
    killed = subprocess.run([sys.executable, "-c", KILLED_IN_FIRST_SAVE, str(folder), tests])
    assert killed.returncode == 9
    left = sorted(p.name for p in folder.iterdir())
    assert any(name.startswith(store.DATA_PREFIX) for name in left)
    assert store.MANIFEST not in left
    store.check_session_target(folder)  # nobody's work: not refused as a damaged session
    saved = make_annotation(seed=1)
    save_session(folder, saved, expected_version=None)
    assert_same(load_session(folder), saved)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([store.MANIFEST, store.session_version(folder), ".lock"])


def test_data_without_a_manifest_from_elsewhere_is_still_refused(tmp_path):
    folder = tmp_path / "s"
    save_session(folder, make_annotation())
    (folder / store.MANIFEST).unlink()  # a session that lost its manifest
    with pytest.raises(StoreError, match="may be a damaged session"):
        store.check_session_target(folder)
