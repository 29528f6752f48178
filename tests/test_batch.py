"""Batches on a real Dask ``LocalCluster`` with two worker processes: every video's masks
as ``track`` gives them alone, a killed worker's video finished on retry, a corrupt
video reported while the others finish, and a second run that does no work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from napari_sam2_track import cli
from napari_sam2_track.batch import run_batch
from napari_sam2_track.batch_jobs import BatchJob, read_summary
from napari_sam2_track.batch_worker import exports_path, usable_cores
from napari_sam2_track.results import decode_mask
from napari_sam2_track.store import MANIFEST, load_session, session_version
from napari_sam2_track.synthetic import make_synthetic_video
from napari_sam2_track.tracking_run import ModelOptions, TrackOptions

from conftest import write_video

IMAGE_SIZE = 256
CLIP_FRAMES = 5
LONG_FRAMES = 12
WORKERS = 2
EXPORTS = ("coco", "mot")


def _clip(folder: Path, name: str, n_frames: int, seed: int) -> tuple[Path, Path]:
    """A synthetic clip and a prompts CSV with one point on each of its two objects."""
    video = make_synthetic_video(n_frames=n_frames, height=120, width=160, n_objects=2, seed=seed)
    path = write_video(folder / f"{name}.mp4", video.frames)
    rows = []
    for obj_id in (1, 2):
        pixels = np.argwhere(video.labels[0] == obj_id)
        y, x = pixels[len(pixels) // 2]
        rows.append(f"0,{obj_id},{x},{y},1")
    prompts = folder / f"{name}.csv"
    prompts.write_text("frame,obj_id,x,y,label\n" + "\n".join(rows) + "\n")
    return path, prompts


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[BatchJob]:
    folder = tmp_path_factory.mktemp("clips")
    jobs = []
    for seed in range(3):
        video, prompts = _clip(folder, f"clip{seed}", CLIP_FRAMES, seed)
        jobs.append(BatchJob(video.stem, video, prompts))
    corrupt = folder / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    jobs.append(BatchJob("corrupt", corrupt, jobs[0].prompts))
    return jobs


@pytest.fixture(scope="module")
def model_options(random_checkpoint) -> ModelOptions:
    return ModelOptions(checkpoint=random_checkpoint, device="cpu", image_size=IMAGE_SIZE)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, clips, model_options):
    out = tmp_path_factory.mktemp("batch")
    events = []
    results = run_batch(
        clips, out, model_options, workers=WORKERS, exports=EXPORTS, on_event=events.append
    )
    return out, results, events


def _masks(folder: Path) -> dict[tuple[int, int], np.ndarray]:
    results = load_session(folder).results
    return {
        (frame, obj_id): decode_mask(results.get(frame, obj_id).rle)
        for obj_id in results.object_ids()
        for frame in results.frames_of(obj_id)
    }


def test_each_video_is_done_and_the_corrupt_one_reported(first_run, clips):
    out, results, events = first_run
    assert [r.name for r in results] == [job.name for job in clips]
    assert [r.status for r in results] == ["done", "done", "done", "failed"]
    assert [r.frames for r in results[:3]] == [CLIP_FRAMES] * 3
    assert "corrupt.mp4" in results[3].error.lower() and results[3].error.endswith(".")
    assert read_summary(out) == [
        type(r)(r.name, r.video, r.status, r.frames, round(r.seconds, 1), r.error) for r in results
    ]
    for job in clips[:3]:  # each export as its reader takes it
        coco = COCO(str(exports_path(out, "coco", job.name)))
        assert len(coco.getImgIds()) == CLIP_FRAMES and len(coco.getAnnIds()) == 2 * CLIP_FRAMES
        assert (exports_path(out, "mot", job.name) / "gt" / "gt.txt").is_file()
    assert not exports_path(out, "coco", "corrupt").exists()
    finished = {e.name for e in events if e.result is not None}
    assert finished == {job.name for job in clips}  # the progress the terminal shows
    assert {e.name for e in events if e.total} >= {job.name for job in clips[:3]}


def test_each_videos_masks_match_tracking_it_alone(first_run, clips, tmp_path, random_checkpoint):
    import torch

    out, _, _ = first_run
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, usable_cores() // WORKERS))  # as in each worker
    try:
        for job in clips[:3]:
            alone = tmp_path / f"{job.name}.session"
            args = ["track", str(job.video), "--prompts", str(job.prompts), "--out", str(alone)]
            options = ["--checkpoint", str(random_checkpoint), "--image-size", str(IMAGE_SIZE)]
            assert cli.main([*args, *options, "--device", "cpu"]) == 0
            batch, single = _masks(job.session_folder(out)), _masks(alone)
            assert batch.keys() == single.keys()
            assert len(batch) == 2 * CLIP_FRAMES
            for key, mask in single.items():
                np.testing.assert_array_equal(batch[key], mask, err_msg=f"{job.name} {key}")
    finally:
        torch.set_num_threads(threads)


def test_a_second_run_does_no_work(first_run, clips, random_checkpoint):
    out, _, _ = first_run
    versions = {job.name: session_version(job.session_folder(out)) for job in clips[:3]}
    exported = {j.name: exports_path(out, "coco", j.name).stat().st_mtime_ns for j in clips[:3]}
    jobs_csv = out.parent / "jobs.csv"
    lines = [f"{job.video},{job.prompts},{job.name}" for job in clips]
    jobs_csv.write_text("video,prompts,name\n" + "\n".join(lines) + "\n")
    command = [sys.executable, "-m", "napari_sam2_track.cli", "batch", str(jobs_csv)]
    options = ["--out", str(out), "--checkpoint", str(random_checkpoint), "--device", "cpu"]
    more = ["--image-size", str(IMAGE_SIZE), "--workers", str(WORKERS)]
    more += ["--export", ",".join(EXPORTS)]
    result = subprocess.run(
        [*command, *options, *more],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr  # the corrupt video fails again
    assert "0 done, 3 skipped (done before), 1 failed" in result.stderr
    assert "corrupt: " in result.stderr
    summary = read_summary(out)
    assert [(r.status, r.frames) for r in summary[:3]] == [("skipped", 0)] * 3
    assert summary[3].status == "failed"
    assert {job.name: session_version(job.session_folder(out)) for job in clips[:3]} == versions
    after = {j.name: exports_path(out, "coco", j.name).stat().st_mtime_ns for j in clips[:3]}
    assert after == exported  # nothing exported again


def test_a_worker_killed_mid_video_has_it_finished_on_retry(tmp_path, model_options):
    from distributed import Client, LocalCluster

    video, prompts = _clip(tmp_path, "long", LONG_FRAMES, seed=7)
    job = BatchJob("long", video, prompts)
    killed: list[int] = []
    pids: list[int] = []

    def kill_after_a_save(event) -> None:
        pids.append(event.worker_pid)
        if event.saved and 2 <= event.done <= LONG_FRAMES - 6 and not killed:
            os.kill(event.worker_pid, signal.SIGKILL)
            killed.append(event.worker_pid)

    out = tmp_path / "out"
    with (
        LocalCluster(n_workers=WORKERS, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        (result,) = run_batch(
            [job],
            out,
            model_options,
            TrackOptions(save_every_s=0.0),  # save after every frame
            client=client,
            on_event=kill_after_a_save,
        )
    assert killed, "the worker was never killed"
    assert any(pid != killed[0] for pid in pids[pids.index(killed[0]) :])  # another ran it
    assert result.status == "done", result.error
    assert 0 < result.frames < LONG_FRAMES  # went on from the save, not from the start
    session = job.session_folder(out)
    loaded = load_session(session)
    assert not loaded.warnings and not loaded.pending_frames
    assert loaded.results.frames_of(1) == loaded.results.frames_of(2) == list(range(LONG_FRAMES))
    names = sorted(p.name for p in session.iterdir())
    assert names == sorted([MANIFEST, ".lock", session_version(session)])  # whole, no partials


def test_the_cli_and_the_viewer_import_no_dask_distributed():
    code = (
        "import sys; import napari_sam2_track.cli as c; c.build_parser(); "
        "import napari_sam2_track._widget, napari_sam2_track.batch, napari_sam2_track.batch_cli; "
        "assert 'distributed' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_a_worker_loads_its_model_once_and_one_at_a_time(random_checkpoint, monkeypatch):
    from napari_sam2_track import batch_worker

    monkeypatch.setattr(batch_worker, "_model", None)
    load = batch_worker.shared_model
    first = load("sam2.1_hiera_tiny", random_checkpoint, "cpu", 128)
    assert load("sam2.1_hiera_tiny", random_checkpoint, "cpu", 128) is first
    other = load("sam2.1_hiera_tiny", random_checkpoint, "cpu", 160)
    assert other is not first and other.image_size == 160
    assert batch_worker._model[1] is other  # the first one was let go
