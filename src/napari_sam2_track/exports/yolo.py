"""YOLO (Ultralytics) detection and segmentation labels.

Folder layout: ``labels/000123.txt`` for every frame (an empty file where no object is
visible, which YOLO reads as a background image), ``data.yaml`` with the class names,
and ``images/000123.jpg`` only when frame images are asked for; ``data.yaml`` points
``train`` and ``val`` at ``images`` either way, so frames extracted later under those
names complete the dataset.

Coordinates are fractions of the image width and height, measured from the image's
top-left corner to pixel edges (pixel column ``i`` spans ``[i, i + 1]``):

* detection: ``class cx cy w h`` from the mask's box;
* segmentation: ``class x1 y1 x2 y2 ...``, the outline of the object's largest
  connected piece (scikit-image's marching squares at the half-way level runs along
  pixel edges, cutting each corner pixel diagonally), simplified to within
  ``OUTLINE_TOLERANCE`` pixels. YOLO polygons cannot hold holes or several pieces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ..boxes import box_edges, yolo_box
from ..results import ObjectMask
from ..store import Annotation
from ._common import (
    ExportOptions,
    class_index,
    class_names,
    frame_file,
    visible,
    write_jpeg,
)

OUTLINE_TOLERANCE = 0.5


def largest_outline(mask: np.ndarray) -> np.ndarray | None:
    """(N, 2) polygon ``(x, y)`` around the mask's largest piece, in pixel-edge units."""
    from skimage.measure import approximate_polygon, find_contours

    # Padding closes the outline of objects that touch the image border.
    contours = find_contours(np.pad(mask, 1).astype(np.uint8), 0.5)
    if not contours:
        return None
    outline = max(contours, key=_enclosed_area)
    outline = approximate_polygon(outline, tolerance=OUTLINE_TOLERANCE)[:-1]
    # Undo the padding (-1) and move from pixel centres to pixel edges (+0.5).
    return outline[:, ::-1] - 0.5


def _enclosed_area(contour: np.ndarray) -> float:
    y, x = contour[:, 0], contour[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _detection_line(entry: ObjectMask, width: int, height: int) -> str:
    return _numbers(yolo_box(entry.box, width, height))


def _segment_line(entry: ObjectMask, width: int, height: int) -> str | None:
    # Outlining the box's crop alone keeps large frames fast.
    x0, y0, x1, y1 = box_edges(entry.box)
    outline = largest_outline(entry.mask[y0:y1, x0:x1])
    if outline is None or len(outline) < 3:
        return None
    outline = outline + np.array([x0, y0])
    return _numbers((outline / (width, height)).clip(0, 1).ravel())


def _numbers(values) -> str:
    return " ".join(f"{v:.6f}" for v in values)


def _write_yolo(annotation: Annotation, target: Path, options: ExportOptions, line) -> None:
    video = annotation.video
    classes = class_index(annotation)
    (target / "labels").mkdir()
    for frame in range(video.n_frames):
        rows = []
        for obj_id, entry in visible(annotation.results.frame(frame)):
            coordinates = line(entry, video.width, video.height)
            if coordinates is not None:
                rows.append(f"{classes[obj_id]} {coordinates}\n")
        (target / "labels" / frame_file(frame, ".txt")).write_text("".join(rows))
        if options.frames is not None:
            write_jpeg(target / "images" / frame_file(frame, ".jpg"), options.frames[frame])
        options.progress(frame + 1, video.n_frames)
    names = dict(enumerate(class_names(annotation)))
    data = {"train": "images", "val": "images", "nc": len(names), "names": names}
    (target / "data.yaml").write_text(
        yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )


def write_yolo_detect(annotation: Annotation, target: Path, options: ExportOptions) -> None:
    _write_yolo(annotation, target, options, _detection_line)


def write_yolo_segment(annotation: Annotation, target: Path, options: ExportOptions) -> None:
    _write_yolo(annotation, target, options, _segment_line)
