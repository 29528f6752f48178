"""npe2 writers: a Labels layer as DAVIS palette PNGs, a boxes Shapes layer as CSV.

Both write all or nothing, like the session exports, and use the same conventions
(see :mod:`napari_sam2_track.exports.davis` and :mod:`napari_sam2_track.box_csv`).
"""

from __future__ import annotations

import uuid
import weakref
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .box_csv import box_row, write_box_csv
from .exports import ExportError
from .exports._common import atomic_output, frame_file
from .exports.davis import FRAME_DIGITS, check_object_count, write_index_png
from .layers import corners_to_box
from .store import DEFAULT_CLASS

#: Metadata key of a boxes layer that shows part of a video's boxes: its value is a
#: token naming the source of them all (a string, as napari may copy metadata).
BOXES_SOURCE_KEY = "sam2_track_boxes"


class BoxesSource(Protocol):
    def all_boxes(self) -> tuple[list[np.ndarray], dict[str, list]]:
        """Rectangles and features (``obj_id``, ``frame``...) of every box."""


_sources: weakref.WeakValueDictionary[str, BoxesSource] = weakref.WeakValueDictionary()


def register_boxes_source(source: BoxesSource) -> str:
    """The token under which the boxes writer finds ``source`` while it lives."""
    token = uuid.uuid4().hex
    _sources[token] = source
    return token


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
    (:func:`~napari_sam2_track.layers.corners_to_box`). A layer whose metadata names
    a live source (:data:`BOXES_SOURCE_KEY`) is written with every box of that source.
    """
    data, features, shape_types = _boxes_to_write(data, attributes)
    if len(data) and "obj_id" not in features:
        raise ExportError("the boxes layer has no obj_id feature, which the CSV needs.")
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


def _boxes_to_write(data: Any, attributes: dict) -> tuple[Any, dict, list[str]]:
    """Rectangles, features (columns as arrays) and shape types: the source's if the
    layer names a live one, else the layer's own."""
    token = (attributes.get("metadata") or {}).get(BOXES_SOURCE_KEY)
    source = _sources.get(token) if isinstance(token, str) else None
    if source is not None:
        data, features = source.all_boxes()
        shape_types = ["rectangle"] * len(data)
    else:
        features = attributes.get("features")
        if features is None or len(features) == 0:
            features = attributes.get("properties") or {}
        shape_types = attributes.get("shape_type") or ["rectangle"] * len(data)
    return data, {name: np.asarray(column) for name, column in features.items()}, shape_types


def _feature(features: Any, name: str, index: int) -> Any:
    if name not in features:
        return None
    value = features[name][index]
    missing = isinstance(value, (float, np.floating)) and np.isnan(value)
    return None if missing else value
