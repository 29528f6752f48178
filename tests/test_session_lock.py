"""One writer per session folder, shown with real processes; and no save that replaces a
version the writer has not seen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from napari_sam2_track.annotation_model import AnnotationModel
from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.session_lock import LOCK_FILE, SessionLockedError, session_lock
from napari_sam2_track.store import (
    MANIFEST,
    SessionChangedError,
    load_session,
    save_session,
    session_version,
)
from test_store import make_annotation, make_video

HOLD = textwrap.dedent(
    """
    import sys
    from napari_sam2_track.session_lock import session_lock

    with session_lock(sys.argv[1], "napari-sam2-track track"):
        print("locked", flush=True)
        sys.stdin.readline()  # hold it until told, or until killed
    """
)

SAVE_OTHER = textwrap.dedent(
    """
    import sys
    from napari_sam2_track.store import ObjectInfo, load_session, save_session

    stored = load_session(sys.argv[1])
    stored.objects[1] = ObjectInfo(1, "renamed elsewhere", "cup")
    save_session(sys.argv[1], stored, expected_version=stored.version)
    """
)


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of ``tmp_path / "s"``, until it is killed."""
    folder = tmp_path / "s"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "locked"  # waits on the process, no sleep
    yield folder, process
    if process.poll() is None:
        process.kill()
    process.wait()


def test_a_save_while_another_process_writes_names_that_process(holder):
    folder, process = holder
    with pytest.raises(SessionLockedError) as refused:
        save_session(folder, make_annotation(), expected_version=None)
    message = str(refused.value)
    assert f"napari-sam2-track track (process {process.pid} on this machine" in message
    assert "wait for it to finish" in message
    assert not (folder / MANIFEST).exists()


def test_a_lock_left_by_a_killed_process_is_taken_over(holder):
    folder, process = holder
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (folder / LOCK_FILE).exists()  # its file stays; the lock died with it
    save_session(folder, make_annotation(), expected_version=None)
    assert load_session(folder).results.frames() == list(range(12))


def test_the_lock_is_free_again_once_its_holder_lets_go(holder):
    folder, process = holder
    process.stdin.write("\n")
    process.stdin.flush()
    process.wait()
    save_session(folder, make_annotation(), expected_version=None)


def test_a_track_run_into_a_folder_another_process_writes_is_refused_at_once(holder, tmp_path):
    folder, process = holder
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_sam2_track.cli",
            "track",
            str(tmp_path / "no.mp4"),
            "--prompts",
            str(tmp_path / "no.csv"),
            "--out",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"process {process.pid}" in lines[0], result.stderr


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    folder = tmp_path / "s"
    with session_lock(folder, "napari-sam2-track track", wait=0):
        save_session(folder, make_annotation(), expected_version=None)  # inside a run
    assert session_version(folder) is not None


def test_a_save_never_replaces_a_version_another_process_saved_since(tmp_path, random_model):
    folder = tmp_path / "s"
    save_session(folder, make_annotation(), expected_version=None)
    opened = load_session(folder)
    session = TrackingSession(make_video().frames, random_model)
    model = AnnotationModel(session, opened.video, opened.objects, folder, stored=opened)
    model.save()  # the version it opened: replaced
    subprocess.run([sys.executable, "-c", SAVE_OTHER, str(folder)], check=True, timeout=120)
    theirs = session_version(folder)

    with pytest.raises(SessionChangedError, match="saved by another program"):
        model.save()
    with pytest.raises(SessionChangedError):
        model.autosave()
    assert session_version(folder) == theirs
    assert load_session(folder).objects[1].name == "renamed elsewhere"


def test_saving_into_a_folder_that_holds_another_session_is_refused(tmp_path):
    folder = tmp_path / "s"
    save_session(folder, make_annotation(seed=0), expected_version=None)
    with pytest.raises(SessionChangedError, match="already holds a session"):
        save_session(folder, make_annotation(seed=1), expected_version=None)


def test_an_autosave_respects_a_lock_another_process_holds(holder, random_model):
    folder, process = holder
    session = TrackingSession(make_video().frames, random_model)
    model = AnnotationModel(session, make_annotation().video, folder=folder)
    with pytest.raises(SessionLockedError, match=f"process {process.pid}"):
        model.autosave()
    assert not (folder / MANIFEST).exists()


def test_a_batch_into_a_folder_another_process_holds_is_refused_at_once(holder, tmp_path):
    from napari_sam2_track.batch import run_batch
    from napari_sam2_track.batch_jobs import BatchJob

    folder, process = holder
    job = BatchJob("a", tmp_path / "a.mp4", tmp_path / "a.csv")
    with pytest.raises(SessionLockedError, match=f"process {process.pid}"):
        run_batch([job], folder)  # before any cluster starts
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]


@pytest.mark.skipif(os.name == "nt", reason="flock is the POSIX lock")
def test_a_file_system_without_locks_is_one_sentence(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)  # as NFS without a lock daemon answers
    from napari_sam2_track.session_lock import NoFileLocksError

    with pytest.raises(NoFileLocksError, match="cannot lock files") as refused:
        save_session(tmp_path / "s", make_annotation(), expected_version=None)
    assert "mount this one with file locks" in str(refused.value)
    assert not (tmp_path / "s" / MANIFEST).exists()
