"""The napari layers of an annotation: their names, their keyword arguments, and plain
conversions between their data and tracking data (no viewer needed).

Points layer rows are ``(frame, row, column)``; Shapes rectangles are four corners
``(frame, row, column)``. Pixel ``i`` covers ``[i - 0.5, i + 0.5]`` in napari's world
coordinates, so a box drawn around pixels ``x .. x + w - 1`` runs from ``x - 0.5`` to
``x + w - 0.5``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .boxes import Box, box_edges, box_from_edges
from .prompts import FramePrompt, PromptError, PromptSet, object_id, prompts_from_points
from .results import TrackResults
from .store import DEFAULT_CLASS, ObjectInfo

PROMPTS_LAYER, MASKS_LAYER, BOXES_LAYER = "SAM2 prompts", "SAM2 masks", "SAM2 boxes"
BOX_PROMPTS_LAYER = "SAM2 box prompts"
PROMPT_FEATURES = ("label", "obj_id")
BOX_FEATURES = ("obj_id", "frame", "name", "class", "score")


def video_layer_kwargs(name: str, fps: float | None, source_path: str | None, **metadata) -> dict:
    """Keyword arguments of a video's RGB image layer; ``metadata`` adds to its metadata."""
    return {
        "name": name,
        "rgb": True,
        "contrast_limits": [0, 255],
        "metadata": {"fps": fps, "source_path": source_path, **metadata},
    }


def marker_size(height: int, width: int) -> float:
    """The size of prompt points (and a quarter of it, box edges) on a frame this big."""
    return max(height, width) / 60


def prompts_layer_kwargs(size: float, features: Mapping[str, list] | None = None) -> dict:
    """Keyword arguments of the prompts Points layer (features ``label`` and ``obj_id``)."""
    features = features or {name: [] for name in PROMPT_FEATURES}
    return {
        "ndim": 3,
        "name": PROMPTS_LAYER,
        "features": pd.DataFrame(
            {name: pd.Series(features[name], dtype=int) for name in PROMPT_FEATURES}
        ),
        "size": size,
        "border_width": 0.15,
        "border_width_is_relative": True,
        "border_color": "white",
        "out_of_slice_display": False,
    }


def masks_layer_kwargs() -> dict:
    """Keyword arguments of the masks Labels layer (label value = object id)."""
    return {"name": MASKS_LAYER, "opacity": 0.5}


def hiding_colormap(colormap, hidden: set[int], obj_ids: set[int]):
    """``colormap`` (the masks layer's own) with the ``hidden`` objects transparent;
    ``colormap`` itself when none is hidden. Other labels than ``obj_ids`` show grey."""
    from napari.utils.colormaps import DirectLabelColormap

    if not hidden:
        return colormap
    colors = {None: np.array([0.5, 0.5, 0.5, 1.0]), 0: np.zeros(4)}
    for obj_id in obj_ids | hidden:
        colors[obj_id] = (
            np.zeros(4) if obj_id in hidden else np.asarray(colormap.map(obj_id), float)
        )
    return DirectLabelColormap(color_dict=colors)


def boxes_layer_kwargs(size: float) -> dict:
    """Keyword arguments of the boxes Shapes layer (features as :data:`BOX_FEATURES`)."""
    return {
        "ndim": 3,
        "name": BOXES_LAYER,
        "shape_type": "rectangle",
        "face_color": "transparent",
        "edge_width": max(1.0, size / 4),
        "edge_color": "yellow",
    }


def box_prompts_layer_kwargs(size: float) -> dict:
    """Keyword arguments of the box prompts Shapes layer (feature ``obj_id``): one
    rectangle per object and frame, drawn with the rectangle tool."""
    return {
        "ndim": 3,
        "name": BOX_PROMPTS_LAYER,
        "shape_type": "rectangle",
        "face_color": "transparent",
        "edge_width": max(1.0, size / 3),
        "edge_color": "cyan",
        "features": pd.DataFrame({"obj_id": pd.Series([], dtype=int)}),
    }


def prompt_boxes(prompts: PromptSet) -> tuple[list[np.ndarray], dict[str, list]]:
    """Rectangles and features of the box prompts; inverse of :func:`boxes_from_layer`.
    A prompt box is in SAM 2's pixel coordinates, as points are: corners map as they
    are, ``(x, y)`` to ``(row y, column x)``."""
    rectangles, features = [], {"obj_id": []}
    for (frame, obj_id), prompt in prompts.items():
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            rectangles.append(
                np.array([[frame, y0, x0], [frame, y0, x1], [frame, y1, x1], [frame, y1, x0]])
            )
            features["obj_id"].append(int(obj_id))
    return rectangles, features


def boxes_from_layer(shapes: list[np.ndarray], features) -> dict[tuple[int, int], tuple]:
    """The box prompt each rectangle of a Shapes layer gives, by (frame, object id);
    of two for one object on one frame, the later one."""
    if len(shapes) == 0:
        return {}
    obj_ids = np.asarray(features["obj_id"], dtype=float)
    boxes = {}
    for corners, obj_id in zip(shapes, obj_ids, strict=True):
        if not np.isfinite(obj_id):
            continue  # drawn before its features were filled in
        corners = np.asarray(corners, dtype=float)
        rows, cols = corners[:, -2], corners[:, -1]
        if np.ptp(rows) < 1 or np.ptp(cols) < 1:
            continue  # a rectangle still being drawn, or a line
        key = (round(float(corners[0, -3])), object_id(obj_id))
        boxes[key] = (float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max()))
    return boxes


def prompt_points(prompts: PromptSet) -> tuple[np.ndarray, dict[str, list]]:
    """Points layer rows and features of the point prompts; inverse of
    :func:`prompts_from_layer` for prompts made of points."""
    rows, features = [], {name: [] for name in PROMPT_FEATURES}
    for (frame, obj_id), prompt in prompts.items():
        for (x, y), label in zip(prompt.points, prompt.labels, strict=True):
            rows.append((frame, y, x))
            features["label"].append(int(label))
            features["obj_id"].append(int(obj_id))
    return np.array(rows, dtype=float).reshape(-1, 3), features


def prompts_from_layer(data: np.ndarray, features) -> dict[tuple[int, int], FramePrompt]:
    """The prompts a Points layer holds, one per (frame, object id)."""
    if len(data) == 0:
        return {}
    missing = [name for name in PROMPT_FEATURES if name not in features]
    if missing:
        raise PromptError(f"the prompts layer lacks the features {', '.join(missing)}.")
    labels = np.asarray(features["label"], dtype=float)
    obj_ids = np.asarray(features["obj_id"], dtype=float)
    # Rows whose features are not filled in yet (data set before features, as a script
    # may do) are not prompts until they are.
    complete = np.isfinite(labels) & np.isfinite(obj_ids)
    return prompts_from_points(
        np.asarray(data)[complete, -3:],
        labels[complete].astype(int),
        obj_ids[complete].astype(int),
    )


def changed_prompts(
    before: Mapping[tuple[int, int], FramePrompt], after: Mapping[tuple[int, int], FramePrompt]
) -> dict[tuple[int, int], FramePrompt | None]:
    """What to tell the engine: new or changed prompts, and None for removed ones."""
    changes: dict[tuple[int, int], FramePrompt | None] = {
        key: prompt for key, prompt in after.items() if before.get(key) != prompt
    }
    changes.update({key: None for key in before if key not in after})
    return changes


def box_corners(frame: int, box: Box) -> np.ndarray:
    """A napari rectangle (4 corners of frame, row, column) around a box."""
    left, top, right, bottom = (edge - 0.5 for edge in box_edges(box))
    return np.array(
        [[frame, top, left], [frame, top, right], [frame, bottom, right], [frame, bottom, left]],
        dtype=float,
    )


def corners_to_box(corners: np.ndarray) -> Box:
    """The box whose pixel edges lie nearest a rectangle's; inverse of :func:`box_corners`."""
    rows, cols = corners[:, -2], corners[:, -1]
    edges = (cols.min(), rows.min(), cols.max(), rows.max())
    return box_from_edges(*(round(edge + 0.5) for edge in edges))


def box_layer_data(
    results: TrackResults,
    objects: Mapping[int, ObjectInfo],
    frames: Iterable[int] | None = None,
    hidden: set[int] = frozenset(),
) -> tuple[list[np.ndarray], dict[str, list]]:
    """Rectangles and features for a boxes Shapes layer: one per object per frame, on
    every frame with results or only on ``frames``, leaving out ``hidden`` objects.
    Names and classes are those of ``objects`` (the boxes CSV's defaults without)."""
    rectangles: list[np.ndarray] = []
    features: dict[str, list] = {name: [] for name in BOX_FEATURES}
    chosen = results if frames is None else ((f, results.frame(f)) for f in sorted(frames))
    for frame, entries in chosen:
        for obj_id, entry in sorted(entries.items()):
            if entry.box is None or obj_id in hidden:
                continue
            info = objects.get(obj_id) or ObjectInfo(obj_id, f"object {obj_id}")
            rectangles.append(box_corners(frame, entry.box))
            features["obj_id"].append(obj_id)
            features["frame"].append(frame)
            features["name"].append(info.name)
            features["class"].append(info.category or DEFAULT_CLASS)
            features["score"].append(entry.score)
    return rectangles, features
