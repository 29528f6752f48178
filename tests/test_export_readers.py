"""Exports read by TrackEval as benchmarks read them: MOT, DAVIS and YouTube-VIS load
unchanged, with the session's frames, ids, boxes and masks, and score perfectly against
themselves."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from napari_sam2_track.exports import export
from test_exports import CLASSES, VISIBLE, H, N, W, annotation, frames, run_export, session  # noqa: F401

trackeval = pytest.importorskip(
    "trackeval", reason="TrackEval (pip install trackeval) reads the exports as benchmarks do"
)

QUIET = {"PRINT_CONFIG": False}
EVAL_CONFIG = {
    "USE_PARALLEL": False,
    "PRINT_RESULTS": False,
    "PRINT_CONFIG": False,
    "OUTPUT_SUMMARY": False,
    "OUTPUT_DETAILED": False,
    "PLOT_CURVES": False,
    "OUTPUT_EMPTY_CLASSES": False,
    "TIME_PROGRESS": False,
    "DISPLAY_LESS_PROGRESS": True,
}


def hota_against_itself(dataset) -> float:
    """The lowest HOTA over classes of the export scored as its own tracker output: 1.0
    when it reads whole."""
    evaluator = trackeval.Evaluator(EVAL_CONFIG)
    results, _ = evaluator.evaluate([dataset], [trackeval.metrics.HOTA(QUIET)])
    (by_tracker,) = results.values()
    (by_sequence,) = by_tracker.values()
    combined = by_sequence["COMBINED_SEQ"]
    return min(float(np.mean(combined[c]["HOTA"]["HOTA"])) for c in dataset.class_list)


def compressed(rle: dict | None) -> dict | None:
    if rle is None:
        return None
    coded = mask_utils.frPyObjects(rle, *rle["size"])
    return {"size": coded["size"], "counts": coded["counts"].decode("ascii")}


def test_mot_loads_in_trackeval_with_the_sessions_ids_and_boxes(tmp_path, annotation):  # noqa: F811
    out = run_export(tmp_path / "gt", annotation, "mot")
    tracker = tmp_path / "trackers" / "ours" / "data"
    tracker.mkdir(parents=True)
    # A tracker's file as MOTChallenge wants it: the same boxes, with no class (-1).
    rows = [line.split(",") for line in (out / "gt" / "gt.txt").read_text().splitlines()]
    lines = [",".join([*row[:7], "-1", "-1", "-1"]) for row in rows]
    (tracker / f"{out.name}.txt").write_text("\n".join(lines) + "\n")
    dataset = trackeval.datasets.MotChallenge2DBox(
        {
            **QUIET,
            "GT_FOLDER": str(out.parent),
            "TRACKERS_FOLDER": str(tmp_path / "trackers"),
            "SKIP_SPLIT_FOL": True,
            "SEQ_INFO": {out.name: None},  # None: its length from seqinfo.ini
            # The classes are the session's, not MOTChallenge's pedestrians (labels.txt).
            "DO_PREPROC": False,
        }
    )
    raw = dataset.get_raw_seq_data("ours", out.name)
    assert raw["num_timesteps"] == N
    for frame in range(N):
        objects = sorted((o, e) for o, e in annotation.results.frame(frame).items() if not e.empty)
        assert raw["gt_ids"][frame].tolist() == [o for o, _ in objects]
        boxes = np.reshape([e.box for _, e in objects], (-1, 4))
        np.testing.assert_array_equal(raw["gt_dets"][frame].reshape(-1, 4), boxes)
        classes = [CLASSES.index(annotation.class_name(o)) + 1 for o, _ in objects]
        assert raw["gt_classes"][frame].tolist() == classes
    assert hota_against_itself(dataset) == pytest.approx(1.0)


def test_davis_loads_in_trackeval_with_each_objects_mask(tmp_path, annotation):  # noqa: F811
    out = run_export(tmp_path, annotation, "davis")
    tracker = tmp_path / "trackers" / "ours" / "data"
    shutil.copytree(out / "Annotations", tracker)
    dataset = trackeval.datasets.DAVIS(
        {
            **QUIET,
            "GT_FOLDER": str(out / "Annotations"),
            "TRACKERS_FOLDER": str(tmp_path / "trackers"),
        }
    )
    assert dataset.seq_list == ["clip"]
    raw = dataset.get_raw_seq_data("ours", "clip")
    index_of = {obj_id: i + 1 for i, obj_id in enumerate(sorted(VISIBLE))}
    for frame in range(N):
        labels = annotation.results.labels(frame)
        shown = sorted(index_of[o] for o in np.unique(labels) if o)
        assert sorted(raw["gt_ids"][frame].tolist()) == shown
        for det, index in zip(raw["gt_dets"][frame], raw["gt_ids"][frame], strict=True):
            obj_id = next(o for o, i in index_of.items() if i == index)
            np.testing.assert_array_equal(mask_utils.decode(det).astype(bool), labels == obj_id)
    assert hota_against_itself(dataset) == pytest.approx(1.0)


def test_youtube_vis_loads_in_trackeval_with_tracks_as_objects(tmp_path, annotation):  # noqa: F811
    split = "youtube_vis_export"
    gt_folder = tmp_path / "gt" / split
    gt_folder.mkdir(parents=True)
    out = export(annotation, "youtube_vis", gt_folder / "clip.json")
    data = json.loads(out.read_text())
    results = [  # predictions as YouTube-VIS results hold them: compressed RLE
        {
            "video_id": ann["video_id"],
            "category_id": ann["category_id"],
            "segmentations": [compressed(rle) for rle in ann["segmentations"]],
            "score": 1.0,
        }
        for ann in data["annotations"]
    ]
    tracker = tmp_path / "trackers" / split / "ours" / "data"
    tracker.mkdir(parents=True)
    (tracker / "results.json").write_text(json.dumps(results))
    dataset = trackeval.datasets.YouTubeVIS(
        {
            **QUIET,
            "GT_FOLDER": f"{tmp_path / 'gt'}/",
            "TRACKERS_FOLDER": f"{tmp_path / 'trackers'}/",
            "SPLIT_TO_EVAL": "export",
        }
    )
    assert dataset.seq_list == ["clip"]
    raw = dataset.get_raw_seq_data("ours", "clip")
    for frame in range(N):
        shown = sorted(o for o, frames_on in VISIBLE.items() if frame in frames_on)
        assert sorted(raw["gt_ids"][frame].tolist()) == shown  # the track ids are object ids
        for det, obj_id in zip(raw["gt_dets"][frame], raw["gt_ids"][frame], strict=True):
            mask = mask_utils.decode(det).astype(bool)
            np.testing.assert_array_equal(mask, annotation.results.get(frame, obj_id).mask)
    assert tuple(data["videos"][0][k] for k in ("height", "width")) == (H, W)
    assert hota_against_itself(dataset) == pytest.approx(1.0)
