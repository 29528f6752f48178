"""Exports read back by the tools that consume them: pycocotools, motmetrics, vos-benchmark,
an XML parser, and YOLO's own coordinate rules; plus all-or-nothing output and the CLI."""

from __future__ import annotations

import configparser
import csv
import dataclasses
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from napari_sam2_track import cli
from napari_sam2_track.exports import EXPORTERS, ExportError, export
from napari_sam2_track.exports import davis as davis_module
from napari_sam2_track.prompts import PromptSet
from napari_sam2_track.results import TrackResults
from napari_sam2_track.store import (
    BOXES_FILE,
    Annotation,
    ObjectInfo,
    load_session,
    save_session,
)
from napari_sam2_track.synthetic import make_synthetic_video
from napari_sam2_track.video import open_video
from napari_sam2_track.video_ref import VideoRef

from conftest import write_video

N, H, W = 11, 40, 56
CLASSES = ["cup", "person", "object"]
#: Frames where each object has a mask. Object 1 leaves and comes back, 2 overlaps 1 and
#: stops being tracked after frame 7, 3 is a one-frame track touching the image border,
#: frame 4 has entries but no visible object, frame 10 was never tracked.
VISIBLE = {
    1: [0, 1, 2, 5, 6, 7, 8, 9],
    2: [0, 1, 2, 3, 5, 6, 7],
    3: [7],
    5: [0, 1, 2, 3, 5, 6, 7, 8, 9],
}
TRACKED_ABSENT = {1: [3, 4], 2: [4], 5: [4]}


def object_mask(obj_id: int, frame: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    if obj_id == 1:  # a disc moving right
        return (yy - 15) ** 2 + (xx - 10 - 3 * frame) ** 2 <= 36
    if obj_id == 2:  # a rectangle over the disc's path
        return (yy >= 10) & (yy < 24) & (xx >= 14 + frame) & (xx < 31 + frame)
    if obj_id == 3:  # a square in the top-right corner
        return (yy < 6) & (xx >= W - 6)
    return ((yy - 31) / 5) ** 2 + ((xx - 40 + frame) / 9) ** 2 <= 1  # an ellipse


def score(obj_id: int, frame: int) -> float:
    return 0.95 if (obj_id, frame) == (2, 1) else round(0.9 - 0.1 * obj_id + 0.01 * frame, 4)


def build_annotation(video: VideoRef) -> Annotation:
    results = TrackResults(N, H, W)
    for obj_id, frames in VISIBLE.items():
        for frame in frames:
            results.set(frame, obj_id, object_mask(obj_id, frame), score(obj_id, frame))
    for obj_id, frames in TRACKED_ABSENT.items():
        for frame in frames:
            results.set(frame, obj_id, np.zeros((H, W), bool), 0.01)
    objects = {
        1: ObjectInfo(1, "left cup", "cup"),
        2: ObjectInfo(2, "hand", "person"),
        5: ObjectInfo(5, "right cup", "cup"),
    }
    return Annotation(video, PromptSet(), results, objects)


def visible_pairs() -> list[tuple[int, int]]:
    return sorted((frame, obj_id) for obj_id, frames in VISIBLE.items() for frame in frames)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return make_synthetic_video(n_frames=N, height=H, width=W, n_objects=1).frames


@pytest.fixture(scope="module")
def session(tmp_path_factory, frames) -> Path:
    """A saved session whose video file exists, as the CLI would find it."""
    folder = tmp_path_factory.mktemp("session")
    video = write_video(folder / "clip.mp4", frames)
    save_session(folder / "session", build_annotation(VideoRef.from_source(open_video(video))))
    return folder / "session"


@pytest.fixture(scope="module")
def annotation(session) -> Annotation:
    return load_session(session)


def run_export(tmp_path: Path, annotation: Annotation, fmt: str, **kwargs) -> Path:
    name = "out" if EXPORTERS[fmt].output == "folder" else "out.data"
    return export(annotation, fmt, tmp_path / name, **kwargs)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


# --------------------------------------------------------------------------- formats


def test_coco_reads_back_in_pycocotools_to_the_stored_masks(tmp_path, annotation):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    coco = COCO(str(run_export(tmp_path, annotation, "coco")))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == CLASSES
    images = coco.loadImgs(coco.getImgIds())
    assert [(i["id"], i["frame_index"], i["file_name"]) for i in images] == [
        (f + 1, f, f"{f:06d}.jpg") for f in range(N)
    ]
    found = []
    for ann in coco.loadAnns(coco.getAnnIds()):
        frame, obj_id = ann["image_id"] - 1, ann["track_id"]
        entry = annotation.results.get(frame, obj_id)
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), entry.mask)
        rle = coco.annToRLE(ann)
        assert list(mask_utils.toBbox(rle)) == ann["bbox"] == list(entry.box)
        assert ann["area"] == entry.area and ann["iscrowd"] == 0
        assert ann["attributes"] == {"track_id": obj_id}
        assert ann["score"] == pytest.approx(entry.score)
        assert coco.cats[ann["category_id"]]["name"] == (
            annotation.object_info(obj_id).category or "object"
        )
        found.append((frame, obj_id))
    assert sorted(found) == visible_pairs()


def test_youtube_vis_decodes_to_the_masks_and_null_where_absent(tmp_path, annotation):
    from pycocotools import mask as mask_utils

    data = json.loads(run_export(tmp_path, annotation, "youtube_vis").read_text())
    (video,) = data["videos"]
    assert (video["length"], video["width"], video["height"]) == (N, W, H)
    assert video["file_names"][3] == "clip/000003.jpg"
    assert [c["name"] for c in data["categories"]] == CLASSES
    assert [a["track_id"] for a in data["annotations"]] == sorted(VISIBLE)
    assert [a["id"] for a in data["annotations"]] == sorted(VISIBLE)  # a track is an object
    for ann in data["annotations"]:
        obj_id = ann["track_id"]
        assert len(ann["segmentations"]) == len(ann["bboxes"]) == len(ann["areas"]) == N
        for frame, rle in enumerate(ann["segmentations"]):
            if frame not in VISIBLE[obj_id]:
                assert rle is None and ann["bboxes"][frame] is None
                continue
            entry = annotation.results.get(frame, obj_id)
            assert all(isinstance(count, int) for count in rle["counts"])  # count lists
            mask = mask_utils.decode(mask_utils.frPyObjects(rle, H, W))
            np.testing.assert_array_equal(mask.astype(bool), entry.mask)
            assert ann["bboxes"][frame] == list(entry.box)


# motmetrics 1.4.0, the latest release, predates numpy 2 (np.asfarray) and pandas 3.
@pytest.mark.filterwarnings("ignore:Operation with tuple is deprecated")
def test_mot_scores_perfectly_in_motmetrics_against_the_store(tmp_path, annotation, monkeypatch):
    import motmetrics as mm
    import pandas as pd

    monkeypatch.setattr(np, "asfarray", lambda a: np.asarray(a, dtype=float), raising=False)

    out = run_export(tmp_path, annotation, "mot")
    gt = mm.io.loadtxt(out / "gt" / "gt.txt", fmt="mot15-2D")
    # The export keeps the store's 0-based corners (as CVAT and datumaro read MOT);
    # motmetrics subtracts MOTChallenge's 1, so it sees each box one pixel up and left.
    rows = []
    for f, o in visible_pairs():
        x, y, width, height = annotation.results.get(f, o).box
        rows.append((f + 1, o, x - 1, y - 1, width, height, 1.0))
    columns = ["FrameId", "Id", "X", "Y", "Width", "Height", "Confidence"]
    hypothesis = pd.DataFrame(rows, columns=columns).set_index(["FrameId", "Id"])
    accumulator = mm.utils.compare_to_groundtruth(gt, hypothesis, "iou", distth=1e-6)
    summary = mm.metrics.create().compute(
        accumulator, metrics=["mota", "idf1", "num_objects", "num_switches"]
    )
    assert summary["mota"].iloc[0] == 1.0 and summary["idf1"].iloc[0] == 1.0
    assert summary["num_objects"].iloc[0] == len(rows)

    first = (out / "gt" / "gt.txt").read_text().splitlines()[0].split(",")
    x, y, w, h = annotation.results.get(0, 1).box
    assert first == ["1", "1", str(x), str(y), str(w), str(h), "1", "1", "1"]
    # Class 1 is the first line of labels.txt, the session's own first class.
    assert (out / "gt" / "labels.txt").read_text().splitlines() == CLASSES
    info = configparser.ConfigParser()
    info.read(out / "seqinfo.ini")
    assert dict(info["Sequence"]) == {
        "name": "out",
        "imdir": "img1",
        "framerate": "25",
        "seqlength": str(N),
        "imwidth": str(W),
        "imheight": str(H),
        "imext": ".jpg",
    }


def test_mot_renumbers_object_ids_below_one(tmp_path):
    results = TrackResults(2, H, W)
    results.set(0, 0, object_mask(1, 0))
    results.set(1, 7, object_mask(2, 1))
    video = VideoRef(None, 2, H, W, 30.0, "test")
    out = run_export(tmp_path, Annotation(video, PromptSet(), results), "mot")
    ids = [line.split(",")[1] for line in (out / "gt" / "gt.txt").read_text().splitlines()]
    assert ids == ["1", "2"]
    assert "frameRate=30\n" in (out / "seqinfo.ini").read_text()


# In a process of its own: vos-benchmark imports OpenCV, whose import points Qt at OpenCV's
# own Qt plugins, which the GUI tests later in this process must not inherit.
VOS_BENCHMARK = """
import json, sys
from vos_benchmark.benchmark import benchmark
jf, j, f, _ = benchmark([sys.argv[1]], [sys.argv[2]], num_processes=1, verbose=False,
                        skip_first_and_last=False)
print(json.dumps([jf[0], j[0], f[0]]))
"""


def test_davis_pngs_score_perfect_j_and_f_in_vos_benchmark(tmp_path, annotation):
    out = run_export(tmp_path, annotation, "davis")
    index_of = {obj_id: i + 1 for i, obj_id in enumerate(sorted(VISIBLE))}
    lookup = np.zeros(max(index_of) + 1, np.uint8)
    lookup[list(index_of)] = list(index_of.values())
    gt, predicted = tmp_path / "gt" / "clip", out / "Annotations" / "clip"
    gt.mkdir(parents=True)
    for frame in range(N):
        name = f"{frame:05d}.png"
        Image.fromarray(lookup[annotation.results.labels(frame)]).save(gt / name)
    assert sorted(p.name for p in (out / "Annotations").iterdir()) == ["clip"]
    png = Image.open(predicted / "00001.png")
    assert png.mode == "P" and png.getpalette()[3:9] == [128, 0, 0, 0, 128, 0]
    scores = subprocess.run(
        [sys.executable, "-c", VOS_BENCHMARK, gt.parent, predicted.parent],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(scores) == [100.0, 100.0, 100.0]  # J&F, J, F in percent

    for obj_id in VISIBLE:
        for frame in range(N):
            png = out / "Objects" / "clip" / f"{obj_id:03d}" / f"{frame:05d}.png"
            decoded = np.array(Image.open(png)) > 0
            expected = object_mask(obj_id, frame) if frame in VISIBLE[obj_id] else False
            np.testing.assert_array_equal(decoded, np.broadcast_to(expected, (H, W)))


def test_davis_exported_twice_to_one_folder_replaces_the_first(tmp_path, annotation):
    first = run_export(tmp_path, annotation, "davis")
    fewer = dataclasses.replace(annotation, results=TrackResults(N, H, W))
    fewer.results.set(0, 1, object_mask(1, 0))
    assert run_export(tmp_path, fewer, "davis") == first
    masks = first / "Objects" / "clip"
    assert sorted(p.name for p in masks.iterdir()) == ["001", "002", "003", "005"]
    assert not np.array(Image.open(first / "Annotations" / "clip" / "00001.png")).any()


def test_cvat_xml_parses_back_to_the_boxes_with_outside_where_stretches_end(tmp_path, annotation):
    root = ET.parse(run_export(tmp_path, annotation, "cvat")).getroot()
    assert root.findtext("version") == "1.1"
    assert [e.text for e in root.iterfind("meta/task/labels/label/name")] == CLASSES
    tracks = {int(t.get("id")): t for t in root.iter("track")}
    assert sorted(tracks) == sorted(VISIBLE)
    for obj_id, track in tracks.items():
        assert track.get("label") == (annotation.object_info(obj_id).category or "object")
        inside, outside = {}, []
        for box in track.iter("box"):
            frame = int(box.get("frame"))
            xtl, ytl, xbr, ybr = (float(box.get(k)) for k in ("xtl", "ytl", "xbr", "ybr"))
            if box.get("outside") == "1":
                outside.append(frame)
            else:
                inside[frame] = (round(xtl), round(ytl), round(xbr - xtl), round(ybr - ytl))
        assert inside == {f: annotation.results.get(f, obj_id).box for f in VISIBLE[obj_id]}
        assert outside == {1: [3, 10], 2: [4, 8], 3: [8], 5: [4, 10]}[obj_id]


def test_cvat_puts_no_outside_box_past_the_last_frame(tmp_path):
    results = TrackResults(2, H, W)
    results.set(1, 4, object_mask(1, 1))
    video = VideoRef(None, 2, H, W, None, "test")
    root = ET.parse(run_export(tmp_path, Annotation(video, PromptSet(), results), "cvat"))
    assert [(b.get("frame"), b.get("outside")) for b in root.iter("box")] == [("1", "0")]


def test_yolo_detect_boxes_map_back_within_a_pixel(tmp_path, annotation):
    out = run_export(tmp_path, annotation, "yolo_detect")
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(CLASSES)) and data["nc"] == 3
    assert sorted(p.name for p in (out / "labels").iterdir()) == [f"{f:06d}.txt" for f in range(N)]
    assert (out / "labels" / "000004.txt").read_text() == ""
    assert (out / "labels" / "000010.txt").read_text() == ""
    assert not (out / "images").exists()
    class_of = {1: 0, 2: 1, 3: 2, 5: 0}
    for frame in range(N):
        lines = (out / "labels" / f"{frame:06d}.txt").read_text().splitlines()
        expected = [o for f, o in visible_pairs() if f == frame]
        assert len(lines) == len(expected)
        for line, obj_id in zip(lines, expected, strict=True):
            cls, cx, cy, w, h = line.split()
            cx, cy, w, h = float(cx) * W, float(cy) * H, float(w) * W, float(h) * H
            box = annotation.results.get(frame, obj_id).box
            np.testing.assert_allclose((cx - w / 2, cy - h / 2, w, h), box, atol=1)
            assert int(cls) == class_of[obj_id]


def test_yolo_segment_polygons_rasterise_back_to_the_masks(tmp_path, annotation):
    from skimage.draw import polygon2mask

    out = run_export(tmp_path, annotation, "yolo_segment")
    for frame in range(N):
        lines = (out / "labels" / f"{frame:06d}.txt").read_text().splitlines()
        expected = [o for f, o in visible_pairs() if f == frame]
        assert len(lines) == len(expected)
        for line, obj_id in zip(lines, expected, strict=True):
            xy = np.array(line.split()[1:], float).reshape(-1, 2) * (W, H)
            # polygon2mask samples pixel centres at integer coordinates, YOLO's are at +0.5.
            mask = polygon2mask((H, W), xy[:, ::-1] - 0.5)
            assert iou(mask, object_mask(obj_id, frame)) > 0.9, (frame, obj_id)


def test_frame_images_are_written_only_when_asked(tmp_path, annotation, frames):
    out = run_export(tmp_path, annotation, "yolo_segment", write_images=True, frames_source=frames)
    jpegs = sorted((out / "images").iterdir())
    assert [p.name for p in jpegs] == [f"{f:06d}.jpg" for f in range(N)]
    decoded = np.asarray(Image.open(jpegs[3]), dtype=float)
    assert np.abs(decoded - frames[3]).mean() < 4
    mot = run_export(tmp_path / "mot", annotation, "mot", write_images=True, frames_source=frames)
    assert sorted(p.name for p in (mot / "img1").iterdir()) == [
        f"{f:06d}.jpg" for f in range(1, N + 1)
    ]


def test_coco_with_images_is_a_dataset_folder_in_cvats_layout(tmp_path, annotation, frames):
    from pycocotools.coco import COCO

    out = export(
        annotation, "coco", tmp_path / "clip_coco", write_images=True, frames_source=frames
    )
    assert sorted(p.name for p in out.iterdir()) == ["annotations", "images"]
    coco = COCO(str(out / "annotations" / "instances_default.json"))
    images = out / "images" / "default"
    for image in coco.loadImgs(coco.getImgIds()):
        assert (images / image["file_name"]).is_file()
    assert len(coco.getAnnIds()) == len(visible_pairs())


def test_davis_with_images_puts_them_in_jpegimages(tmp_path, annotation, frames):
    out = run_export(tmp_path, annotation, "davis", write_images=True, frames_source=frames)
    assert sorted(p.name for p in out.iterdir()) == ["Annotations", "JPEGImages", "Objects"]
    jpegs = sorted((out / "JPEGImages" / "clip").iterdir())
    assert [p.name for p in jpegs] == [f"{f:05d}.jpg" for f in range(N)]


def test_images_need_a_video_and_a_format_that_carries_them(tmp_path, annotation, frames):
    no_path = dataclasses.replace(
        annotation, video=dataclasses.replace(annotation.video, path=None)
    )
    with pytest.raises(ExportError, match="does not record where its video is"):
        run_export(tmp_path, no_path, "yolo_detect", write_images=True)
    with pytest.raises(ExportError, match="does not carry frame images"):
        run_export(tmp_path, annotation, "boxes_csv", write_images=True, frames_source=frames)
    with pytest.raises(ExportError, match="the frames given have 3 frames"):
        run_export(tmp_path, annotation, "mot", write_images=True, frames_source=frames[:3])
    assert list(tmp_path.iterdir()) == []


def test_boxes_csv_has_exclusive_corners_names_and_classes(tmp_path, annotation):
    with open(run_export(tmp_path, annotation, "boxes_csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(int(r["frame"]), int(r["obj_id"])) for r in rows] == visible_pairs()
    for row in rows:
        entry = annotation.results.get(int(row["frame"]), int(row["obj_id"]))
        x, y, w, h = entry.box
        assert [int(row[k]) for k in ("x0", "y0", "x1", "y1")] == [x, y, x + w, y + h]
        assert float(row["score"]) == pytest.approx(entry.score, abs=5e-5)
    assert {(r["obj_id"], r["name"], r["class"]) for r in rows} == {
        ("1", "left cup", "cup"),
        ("2", "hand", "person"),
        ("3", "object 3", "object"),
        ("5", "right cup", "cup"),
    }


def test_a_session_folder_holds_the_same_boxes_csv_as_the_export(tmp_path, annotation):
    manifest = save_session(tmp_path / "s", annotation)
    data = json.loads(manifest.read_text())["data"]
    exported = run_export(tmp_path, annotation, "boxes_csv")
    assert (tmp_path / "s" / data / BOXES_FILE).read_text() == exported.read_text()


# ------------------------------------------------------------------ all-or-nothing output


class Stop(Exception):
    pass


def stop_at(frame: int):
    def progress(done: int, total: int) -> None:
        if done == frame:
            raise Stop

    return progress


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_a_failure_midway_leaves_nothing_behind(tmp_path, annotation, fmt):
    with pytest.raises(Stop):
        run_export(tmp_path, annotation, fmt, progress=stop_at(5))
    assert list(tmp_path.iterdir()) == []


def test_a_writer_failing_midway_keeps_the_previous_export(tmp_path, annotation, monkeypatch):
    out = run_export(tmp_path, annotation, "davis")
    before = {p: p.read_bytes() for p in out.rglob("*.png")}
    write_png, calls = davis_module.write_index_png, []

    def fail_on_the_tenth(path, image):
        calls.append(path)
        if len(calls) == 10:
            raise OSError(28, "No space left on device")
        write_png(path, image)

    monkeypatch.setattr(davis_module, "write_index_png", fail_on_the_tenth)
    with pytest.raises(ExportError, match="could not be written: No space left on device"):
        run_export(tmp_path, annotation, "davis")
    assert list(tmp_path.iterdir()) == [out]
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == before


@pytest.mark.parametrize("fmt", ["coco", "mot"])
def test_an_existing_export_is_replaced_only_on_success(tmp_path, annotation, fmt):
    out = run_export(tmp_path, annotation, fmt)
    before = tree(out)
    without_object_1 = build_annotation(annotation.video)
    without_object_1.results.remove_object(1)
    with pytest.raises(Stop):
        run_export(tmp_path, without_object_1, fmt, progress=stop_at(3))
    assert tree(out) == before and 1 in _track_ids(out, fmt)
    run_export(tmp_path, without_object_1, fmt)
    assert list(tmp_path.iterdir()) == [out]
    assert _track_ids(out, fmt) == {2, 3, 5}


def _track_ids(out: Path, fmt: str) -> set[int]:
    if fmt == "coco":
        return {a["track_id"] for a in json.loads(out.read_text())["annotations"]}
    return {int(line.split(",")[1]) for line in (out / "gt/gt.txt").read_text().splitlines()}


def test_outputs_that_would_clobber_something_else_are_refused(tmp_path, annotation):
    (tmp_path / "a_file").write_text("keep me")
    with pytest.raises(ExportError, match="is an existing file, but this format writes a folder"):
        export(annotation, "davis", tmp_path / "a_file")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_text("keep me")
    with pytest.raises(ExportError, match=r"already holds files this export did not write"):
        export(annotation, "yolo_detect", tmp_path / "photos")
    with pytest.raises(ExportError, match="is an existing folder, but this format writes one"):
        export(annotation, "coco", tmp_path / "photos")
    with pytest.raises(ExportError, match="there is no export format 'voc'; choose one of coco"):
        export(annotation, "voc", tmp_path / "x")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a_file", "holiday.jpg", "photos"]


# ------------------------------------------------------------------------ command line


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_sam2_track.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def tree(root: Path) -> dict[str, bytes]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root.parent)): p.read_bytes() for p in files}


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_cli_export_writes_what_the_python_call_writes(tmp_path, session, annotation, fmt):
    name = "out" if EXPORTERS[fmt].output == "folder" else "out.data"
    result = run_cli("export", session, "--format", fmt, "--out", tmp_path / "cli" / name)
    assert result.returncode == 0, result.stderr
    assert "exporting: 100%" in result.stderr and f"Exported {session}" in result.stderr
    expected = run_export(tmp_path / "python", annotation, fmt)
    assert tree(tmp_path / "cli" / name) == tree(expected)


def test_cli_writes_images_from_the_session_video(tmp_path, session):
    result = run_cli(
        "export", session, "--format", "yolo_detect", "--out", tmp_path / "y", "--images"
    )
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "y" / "images").glob("*.jpg"))) == N


def test_cli_refuses_a_folder_that_is_not_a_session_in_one_line(tmp_path):
    result = run_cli("export", tmp_path, "--format", "coco", "--out", tmp_path / "out.json")
    assert result.returncode == 1
    sentence = f"{tmp_path} is not a session folder: it has no session.json."
    assert result.stderr == f"napari-sam2-track: {sentence}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{session}", "--format", "voc", "--out", "{new}"], "There is no export format 'voc'"),
        (
            ["{session}", "--format", "cvat", "--images", "--out", "{new}"],
            "The cvat format does not carry frame images",
        ),
        (
            ["{session}", "--format", "coco", "--out", "{session}/session.json"],
            "is inside the session folder",
        ),
        (["{session}", "--format", "davis", "--out", "{session}"], "is inside the session"),
        (["{session}", "--format", "davis", "--out", "{file}"], "is an existing file, but"),
        (["{file}", "--format", "coco", "--out", "{new}"], "is not a session folder"),
    ],
)
def test_cli_bad_inputs_give_one_sentence_and_exit_1(tmp_path, session, capsys, args, message):
    (tmp_path / "file").write_text("")
    paths = {"session": session, "file": tmp_path / "file", "new": tmp_path / "new"}
    assert cli.main(["export", *(a.format(**paths) for a in args)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("napari-sam2-track: ") and message in err and err.endswith(".\n")
    assert err.count("\n") == 1
    assert not (tmp_path / "new").exists()


# --------------------------------------------------------------------- napari writers


def test_labels_writer_writes_davis_palette_pngs(tmp_path):
    from napari_sam2_track._writer import write_labels_davis

    labels = np.zeros((3, H, W), np.uint16)
    labels[0][object_mask(1, 0)] = 9
    labels[1][object_mask(2, 1)] = 300
    labels[1][object_mask(1, 1)] = 9
    assert write_labels_davis(str(tmp_path / "masks"), labels, {}) == [str(tmp_path / "masks")]
    written = sorted((tmp_path / "masks").iterdir())
    assert [p.name for p in written] == ["00000.png", "00001.png", "00002.png"]
    pngs = [Image.open(p) for p in written]
    assert all(png.mode == "P" for png in pngs)
    np.testing.assert_array_equal(np.array(pngs[1]), np.searchsorted([0, 9, 300], labels[1]))
    assert not np.array(pngs[2]).any()


def test_shapes_writer_writes_the_same_csv_as_the_export(tmp_path, annotation):
    import napari.layers

    from napari_sam2_track._writer import write_boxes_csv

    rectangles, features = [], {"obj_id": [], "frame": [], "name": [], "class": [], "score": []}
    for frame, obj_id in visible_pairs():
        entry, info = annotation.results.get(frame, obj_id), annotation.object_info(obj_id)
        x, y, w, h = entry.box
        top, left, bottom, right = y - 0.5, x - 0.5, y + h - 0.5, x + w - 0.5  # napari's pixels
        rectangles.append(
            [
                [frame, top, left],
                [frame, top, right],
                [frame, bottom, right],
                [frame, bottom, left],
            ]
        )
        for key, value in zip(
            features,
            (obj_id, frame, info.name, info.category or "object", entry.score),
            strict=True,
        ):
            features[key].append(value)
    layer = napari.layers.Shapes(rectangles, shape_type="rectangle", features=features)
    data, meta, _ = layer.as_layer_data_tuple()
    write_boxes_csv(str(tmp_path / "layer.csv"), data, meta)
    exported = run_export(tmp_path, annotation, "boxes_csv")
    assert (tmp_path / "layer.csv").read_text() == exported.read_text()


def test_shapes_writer_writes_every_box_of_a_live_source_then_the_layer_alone(tmp_path):
    import gc

    import napari.layers

    from napari_sam2_track._writer import (
        BOXES_SOURCE_KEY,
        register_boxes_source,
        write_boxes_csv,
    )
    from napari_sam2_track.layers import box_corners

    class Video:  # every box of a video, of which the layer shows frame 2
        def all_boxes(self):
            features = {"obj_id": [7] * 5, "frame": list(range(5)), "name": ["cup"] * 5}
            return [box_corners(f, (2 + f, 3, 4, 5)) for f in range(5)], features

    alive = [Video()]  # a list, as napari may keep a snapshot of this frame's locals
    layer = napari.layers.Shapes(
        [box_corners(2, (4, 3, 4, 5))],
        shape_type="rectangle",
        features={"obj_id": [7], "frame": [2], "name": ["cup"]},
        metadata={BOXES_SOURCE_KEY: register_boxes_source(alive[0])},
    )

    def saved_rows() -> list[list[str]]:
        data, attributes, _ = layer.as_layer_data_tuple()  # as Save Layers passes them
        write_boxes_csv(str(tmp_path / "boxes.csv"), data, attributes)
        with open(tmp_path / "boxes.csv", newline="") as handle:
            return list(csv.reader(handle))[1:]

    def row(frame: int) -> list[str]:
        return [str(frame), "7", "cup", "object", str(2 + frame), "3", str(6 + frame), "8", ""]

    assert saved_rows() == [row(f) for f in range(5)]
    alive.clear()  # the annotation closed: the layer's own boxes are all there is
    gc.collect()
    assert saved_rows() == [row(2)]


def test_exports_need_neither_qt_nor_torch():
    code = (
        "import sys, napari_sam2_track.exports, napari_sam2_track._writer; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'torch', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'sam2'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
