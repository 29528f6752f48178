"""The jobs CSV, the summary file and the local cluster's size: pure logic, no cluster."""

from __future__ import annotations

import pytest

from napari_sam2_track import cli
from napari_sam2_track.batch import local_cluster_plan
from napari_sam2_track.batch_jobs import (
    BatchJob,
    BatchResult,
    JobsError,
    read_jobs_csv,
    read_summary,
    write_summary,
)
from napari_sam2_track.batch_worker import exports_path, spread_device


def write_jobs(tmp_path, text: str):
    path = tmp_path / "jobs" / "jobs.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_jobs_resolve_relative_paths_and_take_names_and_ranges(tmp_path):
    (tmp_path / "jobs" / "frames").mkdir(parents=True)
    path = write_jobs(
        tmp_path,
        "video,prompts,name,start,end,direction\n"
        "a.mp4,p/a.csv,,,,\n"
        f"{tmp_path}/b.mov,b.session,second,3,9,backward\n"
        "\n"
        "frames,a.csv,,0,,both\n",
    )
    jobs = read_jobs_csv(path)
    folder = path.parent
    assert jobs == [
        BatchJob("a", folder / "a.mp4", folder / "p" / "a.csv"),
        BatchJob("second", tmp_path / "b.mov", folder / "b.session", 3, 9, "backward"),
        BatchJob("frames", folder / "frames", folder / "a.csv", 0, None, "both"),
    ]
    assert jobs[1].session_folder(tmp_path / "out") == tmp_path / "out" / "second.session"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("video\na.mp4\n", "has no prompts column"),
        ("video,prompts,fps\na.mp4,p.csv,3\n", "a column 'fps' that means nothing here"),
        ("video,prompts\n", "lists no videos"),
        ("video,prompts\na.mp4,\n", "line 2 has no prompts"),
        ("video,prompts,start\na.mp4,p.csv,-1\n", "start must be a frame number"),
        ("video,prompts,start,end\na.mp4,p.csv,5,2\n", "starts at frame 5, after its end 2"),
        ("video,prompts,direction\na.mp4,p.csv,sideways\n", "direction must be one of"),
        ("video,prompts,name\na.mp4,p.csv,in/out\n", "a character a file name cannot have"),
        ("video,prompts,name\na.mp4,p.csv,.hidden\n", "cannot start with a dot"),
        ("video,prompts\na.mp4,p.csv\nother/A.mp4,p.csv\n", "two rows are named 'A'"),
    ],
)
def test_a_bad_jobs_file_is_one_sentence_naming_its_line(tmp_path, text, message):
    with pytest.raises(JobsError, match=message) as refused:
        read_jobs_csv(write_jobs(tmp_path, text))
    assert str(refused.value).endswith(".") and "\n" not in str(refused.value)


def test_a_missing_jobs_file_is_one_sentence(tmp_path):
    with pytest.raises(JobsError, match="could not be read"):
        read_jobs_csv(tmp_path / "nope.csv")


def test_the_summary_is_replaced_whole(tmp_path):
    rows = [
        BatchResult("a", "/v/a.mp4", "done", 12, 3.25),
        BatchResult("b, with a comma", "/v/b.mp4", "failed", 0, 0.5, 'a "quoted" sentence.'),
    ]
    write_summary(tmp_path, [BatchResult("old", "/v/old.mp4", "skipped")])
    write_summary(tmp_path, rows)
    assert read_summary(tmp_path) == [
        BatchResult("a", "/v/a.mp4", "done", 12, 3.2),
        rows[1],
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]


@pytest.mark.parametrize(
    ("cores", "gpus", "workers", "plan"),
    [
        (16, 0, None, (1, 16)),  # a CPU machine: one worker with every core
        (16, 4, None, (4, 4)),  # one worker per GPU
        (2, 0, 2, (2, 1)),
        (2, 0, 4, (4, 1)),
    ],
)
def test_a_local_cluster_has_a_worker_per_gpu_or_one(cores, gpus, workers, plan):
    chosen = local_cluster_plan(cores, gpus, workers)
    assert (chosen.workers, chosen.torch_threads) == plan


def test_exports_go_to_a_folder_per_format(tmp_path):
    assert exports_path(tmp_path, "coco", "cups") == tmp_path / "exports" / "coco" / "cups.json"
    assert exports_path(tmp_path, "mot", "cups") == tmp_path / "exports" / "mot" / "cups"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--export", "coco,nope"], "'nope' is not an export format"),
        (["--workers", "2", "--scheduler", "tcp://x:1"], "not allowed with argument"),
    ],
)
def test_bad_batch_options_are_refused_before_anything_runs(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as refused:
        cli.main(["batch", str(tmp_path / "jobs.csv"), "--out", str(tmp_path / "o"), *extra])
    assert refused.value.code == 2
    assert message in capsys.readouterr().err


def test_a_bad_jobs_file_stops_the_batch_before_a_cluster_starts(tmp_path, capsys):
    jobs = write_jobs(tmp_path, "video\na.mp4\n")
    assert cli.main(["batch", str(jobs), "--out", str(tmp_path / "o")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "has no prompts column" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("device", "gpus", "number", "chosen"),
    [
        ("auto", 4, 6, "cuda:2"),  # a local cluster's worker 6 of a 4-GPU machine
        ("cuda", 2, 1, "cuda:1"),
        ("auto", 1, 3, "auto"),  # one GPU: every worker on it
        ("auto", 4, None, "auto"),  # a worker without a number: its own GPU setting
    ],
)
def test_each_numbered_worker_takes_a_gpu_of_its_own(device, gpus, number, chosen):
    assert spread_device(device, gpus, number) == chosen
