"""CVAT for video 1.1 XML: one box track per object.

Each object becomes ``<track id="<object id>" label="<class>">`` with a keyframe box on
every frame where it has a mask. Where a visible stretch ends before the video does, the
next frame gets a copy of the last box with ``outside="1"``, which is how CVAT marks that
the object left; CVAT would otherwise interpolate the track on through the gap.

Box corners are the box's pixel edges (``xtl, ytl, xbr, ybr = x0, y0, x1, y1`` of
:func:`~napari_sam2_track.boxes.box_edges`), as CVAT draws them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..boxes import Box, box_edges
from ..store import Annotation
from ._common import ExportOptions, class_names, object_ids


def _meta(annotation: Annotation, name: str) -> ET.Element:
    video = annotation.video
    meta = ET.Element("meta")
    task = ET.SubElement(meta, "task")
    for key, value in (
        ("name", name),
        ("size", video.n_frames),
        ("mode", "interpolation"),
        ("overlap", 0),
        ("start_frame", 0),
        ("stop_frame", video.n_frames - 1),
    ):
        ET.SubElement(task, key).text = str(value)
    labels = ET.SubElement(task, "labels")
    for label in class_names(annotation):
        element = ET.SubElement(labels, "label")
        ET.SubElement(element, "name").text = label
        ET.SubElement(element, "type").text = "rectangle"
        ET.SubElement(element, "attributes")
    size = ET.SubElement(task, "original_size")
    ET.SubElement(size, "width").text = str(video.width)
    ET.SubElement(size, "height").text = str(video.height)
    return meta


def _box(track: ET.Element, frame: int, box: Box, outside: bool) -> None:
    x0, y0, x1, y1 = box_edges(box)
    ET.SubElement(
        track,
        "box",
        {
            "frame": str(frame),
            "keyframe": "1",
            "outside": "1" if outside else "0",
            "occluded": "0",
            "xtl": f"{x0:.2f}",
            "ytl": f"{y0:.2f}",
            "xbr": f"{x1:.2f}",
            "ybr": f"{y1:.2f}",
            "z_order": "0",
        },
    )


def write_cvat(annotation: Annotation, target: Path, options: ExportOptions) -> None:
    n = annotation.video.n_frames
    boxes: dict[int, dict[int, Box]] = {}
    for frame in range(n):
        for obj_id, entry in annotation.results.frame(frame).items():
            if entry.box is not None:
                boxes.setdefault(obj_id, {})[frame] = entry.box
        options.progress(frame + 1, n)
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    root.append(_meta(annotation, options.name))
    for obj_id in object_ids(annotation):
        if obj_id not in boxes:
            continue
        label = annotation.class_name(obj_id)
        track = ET.SubElement(root, "track", {"id": str(obj_id), "label": label})
        by_frame = boxes[obj_id]
        for frame in sorted(by_frame):
            _box(track, frame, by_frame[frame], outside=False)
            stretch_ends = frame + 1 not in by_frame
            if stretch_ends and frame + 1 < n:
                _box(track, frame + 1, by_frame[frame], outside=True)
    ET.indent(root)
    ET.ElementTree(root).write(target, encoding="utf-8", xml_declaration=True)
