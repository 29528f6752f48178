"""npe2 writers: a Labels layer as DAVIS palette PNGs, a boxes Shapes layer as CSV.

Both write all or nothing, like the session exports, and use the same conventions
(see :mod:`napari_sam2_track.exports.davis` and :mod:`napari_sam2_track.box_csv`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .box_csv import box_row, write_box_csv
from .exports import ExportError
from .exports._common import atomic_output, frame_file
from .exports.davis import FRAME_DIGITS, check_object_count, write_index_png
from .layers import corners_to_box
from .store import DEFAULT_CLASS


def write_labels_davis(path: str, data: Any, attributes: dict) -> list[str]:
    """A (T, H, W) or (H, W) Labels layer as one palette PNG per frame in folder ``path``.

    Label values become indices 1..N in order of value (0 stays background), as the
    session export numbers objects by id.
    """
    volume = data[0] if isinstance(data, list) else data  # multiscale: the full resolution
    frames = [volume] if volume.ndim == 2 else volume
    n_frames = len(frames)
    values: set[int] = set()
    for t in range(n_frames):
        values.update(int(v) for v in np.unique(np.asarray(frames[t])))
    values.discard(0)
    check_object_count(len(values))
    ids = np.array(sorted(values))
    with atomic_output(Path(path), folder=True, owned_names=r"\d+\.png") as target:
        for t in range(n_frames):
            labels = np.asarray(frames[t])
            index = np.searchsorted(ids, labels) + 1
            write_index_png(target / frame_file(t, ".png", FRAME_DIGITS), (labels != 0) * index)
    return [str(path)]


def write_boxes_csv(path: str, data: Any, attributes: dict) -> list[str]:
    """A Shapes layer of rectangles with ``obj_id`` and ``frame`` features as a boxes CSV.

    Optional ``name``, ``class`` and ``score`` features fill those columns. Each
    rectangle becomes the box whose pixel edges lie nearest its sides
    (:func:`~napari_sam2_track.layers.corners_to_box`).
    """
    features = attributes.get("features")
    if features is None or len(features) == 0:
        features = attributes.get("properties") or {}
    if len(data) and "obj_id" not in features:
        raise ExportError("the boxes layer has no obj_id feature, which the CSV needs.")
    shape_types = attributes.get("shape_type") or ["rectangle"] * len(data)
    rows = []
    for index, (corners, kind) in enumerate(zip(data, shape_types, strict=True)):
        if kind != "rectangle":
            raise ExportError(f"shape {index} is a {kind}; the boxes CSV holds rectangles only.")
        corners = np.asarray(corners, dtype=float)
        frame = _feature(features, "frame", index)
        if frame is None:
            if corners.shape[1] < 3:
                raise ExportError("the boxes layer is 2-D and has no frame feature.")
            frame = corners[0, -3]
        obj_id = int(_feature(features, "obj_id", index))
        name = _feature(features, "name", index) or f"object {obj_id}"
        category = _feature(features, "class", index) or DEFAULT_CLASS
        score = _feature(features, "score", index)
        box = corners_to_box(corners)
        rows.append(box_row(round(frame), obj_id, name, category, box, score))
    rows.sort(key=lambda row: (row[0], row[1]))
    with (
        atomic_output(Path(path), folder=False) as target,
        open(target, "w", newline="", encoding="utf-8") as handle,
    ):
        write_box_csv(handle, rows)
    return [str(path)]


def _feature(features: Any, name: str, index: int) -> Any:
    if name not in features:
        return None
    value = np.asarray(features[name])[index]
    missing = isinstance(value, (float, np.floating)) and np.isnan(value)
    return None if missing else value
