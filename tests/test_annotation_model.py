"""The object registry and saving, without a viewer, on a real (random-weight) SAM 2."""

from __future__ import annotations

import pytest

from napari_sam2_track.annotation_model import AnnotationModel
from napari_sam2_track.autosave import AUTOSAVE_ENV
from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.errors import UserError
from napari_sam2_track.store import ObjectInfo, load_session
from napari_sam2_track.synthetic import make_synthetic_video
from napari_sam2_track.video_ref import VideoRef


@pytest.fixture
def model(random_model):
    frames = make_synthetic_video(n_frames=3, height=48, width=64, n_objects=1).frames
    session = TrackingSession(frames, random_model)
    return AnnotationModel(session, VideoRef.from_source(frames))


def test_new_objects_take_the_next_id_and_become_current(model):
    assert model.registry == {} and model.current_object == 1
    assert model.new_object() == 1
    assert model.new_object("cup", "kitchen") == 2
    assert model.current_object == 2
    assert model.registry[2] == ObjectInfo(2, "cup", "kitchen")
    assert model.registry[1].name == "object 1"


def test_the_registry_holds_objects_sam2_does_not_know_yet(model):
    model.new_object()
    assert model.register(5) and not model.register(5)
    model.session.set_prompt(0, 5, [(10, 10)], [1])
    assert sorted(model.registry) == [1, 5]
    assert model.session.object_ids == [5]  # only the objects with prompts or masks


def test_rename_cycle_and_delete(model):
    for _ in range(3):
        model.new_object()
    model.rename(2, "red cup", "cup")
    assert model.registry[2] == ObjectInfo(2, "red cup", "cup")
    model.select(1)
    assert model.cycle(-1) == 3 and model.cycle(1) == 1
    model.session.set_prompt(0, 3, [(10, 10)], [1])
    assert model.delete(3) == 1
    assert sorted(model.registry) == [1, 2]
    assert model.session.prompts.get(0, 3) is None
    model.delete(1)
    assert model.delete(2) == 1  # the last one gone: object 1 anew
    assert model.registry == {1: ObjectInfo(1, "object 1")}


def test_the_annotation_carries_objects_model_and_pending_frames(model):
    model.new_object("cup")
    model.session.set_prompt(1, 1, [(10, 10)], [1])
    annotation = model.annotation()
    assert annotation.objects == {1: ObjectInfo(1, "cup")}
    assert annotation.objects is not model.registry
    assert annotation.model == {
        "name": model.session.model.name,
        "image_size": 128,
        "checkpoint": None,
    }
    assert annotation.pending_frames == [1]
    assert annotation.prompts.get(1, 1) is not None


def test_save_into_a_folder_makes_it_the_session_folder(model, tmp_path):
    with pytest.raises(UserError):
        model.save()
    model.new_object("cup")
    assert model.save(tmp_path / "s") == tmp_path / "s"
    assert model.folder == tmp_path / "s"
    assert load_session(tmp_path / "s").objects == {1: ObjectInfo(1, "cup")}
    model.rename(1, "mug")
    model.save()
    assert load_session(tmp_path / "s").objects[1].name == "mug"


def test_autosave_goes_to_the_session_folder_or_else_the_autosave_area(
    model, tmp_path, monkeypatch
):
    monkeypatch.setenv(AUTOSAVE_ENV, str(tmp_path / "autosave"))
    target = model.autosave()
    assert target.parent == tmp_path / "autosave"
    assert load_session(target).video == model.video
    model.folder = tmp_path / "chosen"
    assert model.autosave() == tmp_path / "chosen"
    assert (tmp_path / "chosen" / "session.json").is_file()


def test_an_autosave_job_writes_what_there_was_when_it_was_made(model, tmp_path):
    model.folder = tmp_path / "s"
    model.session.set_prompt(0, 1, [(10, 10)], [1])
    job = model.autosave_job()
    model.session.set_prompt(2, 1, [(20, 20)], [1])  # after: not in this save
    assert job() == tmp_path / "s"
    assert load_session(tmp_path / "s").prompts.frames() == [0]


def test_an_autosave_job_a_later_save_supersedes_writes_nothing(model, tmp_path):
    model.folder = tmp_path / "s"
    model.session.set_prompt(0, 1, [(10, 10)], [1])
    job = model.autosave_job()
    model.session.set_prompt(2, 1, [(20, 20)], [1])
    model.save()
    version = load_session(tmp_path / "s").version
    assert job() is None  # it would have put the older session back
    saved = load_session(tmp_path / "s")
    assert saved.version == version and saved.prompts.frames() == [0, 2]


def test_a_save_job_never_puts_an_older_session_over_a_newer_one(model, tmp_path):
    model.session.set_prompt(0, 1, [(10, 10)], [1])
    first = model.save_job(tmp_path / "s")
    model.session.set_prompt(2, 1, [(20, 20)], [1])
    second = model.save_job(tmp_path / "s")
    elsewhere = model.save_job(tmp_path / "copy")
    assert model.folder is None  # until a save is written
    assert second() == tmp_path / "s" and model.folder == tmp_path / "s"
    assert first() == tmp_path / "s"  # the newer one holds all it held
    assert load_session(tmp_path / "s").prompts.frames() == [0, 2]
    assert elsewhere() == tmp_path / "copy"  # another folder: written all the same
    assert load_session(tmp_path / "copy").prompts.frames() == [0, 2]


def test_the_folder_chosen_last_is_the_session_folder_whatever_the_order_written(model, tmp_path):
    first = model.save_job(tmp_path / "a")
    second = model.save_job(tmp_path / "b")
    second()
    first()  # written last, chosen first
    assert model.folder == tmp_path / "b"


def test_an_autosave_job_is_kept_when_the_later_save_fails(model, tmp_path, monkeypatch):
    monkeypatch.setenv(AUTOSAVE_ENV, str(tmp_path / "autosave"))
    model.session.set_prompt(0, 1, [(10, 10)], [1])
    job = model.autosave_job()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("not a session")
    with pytest.raises(UserError):
        model.save(notes)
    target = job()
    assert target is not None and load_session(target).prompts.frames() == [0]
