"""Prompts from CSV files: points, boxes, or both.

- points: ``frame,obj_id,x,y,label``
- boxes: ``frame,obj_id,x0,y0,x1,y1`` (pixels, ``x0,y0`` the top-left corner)
- both in one file, with both column sets: each row fills one set, leaving the other
  empty; an object's points and box on one frame make one prompt
- napari's own, written when a Points layer is saved: ``axis-0`` (frame), ``axis-1``
  (row = y), ``axis-2`` (column = x), plus the ``label`` and ``obj_id`` features
  (an ``index`` column, if present, is ignored).
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import numpy as np

from .csv_rows import read_rows
from .prompts import FramePrompt, PromptError, object_id, prompts_from_points, with_boxes

SIMPLE_COLUMNS = ("frame", "obj_id", "x", "y", "label")
NAPARI_COLUMNS = ("axis-0", "axis-1", "axis-2", "label", "obj_id")
BOX_FIELDS = ("x0", "y0", "x1", "y1")
BOX_COLUMNS = ("frame", "obj_id", *BOX_FIELDS)


def read_prompts_csv(path: str | Path) -> dict[tuple[int, int], FramePrompt]:
    """One prompt per (frame, object id) from a CSV of points and/or boxes."""
    path = Path(path)
    try:
        header, rows = read_rows(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PromptError(f"the prompts file {path} could not be read ({exc}).") from None
    if not rows:
        raise PromptError(f"the prompts file {path.name} holds no prompts.")
    boxes_too = set(BOX_COLUMNS) <= set(header)
    if set(SIMPLE_COLUMNS) <= set(header):
        columns = ("frame", "y", "x")
    elif set(NAPARI_COLUMNS) <= set(header) and not boxes_too:
        columns = ("axis-0", "axis-1", "axis-2")
    elif boxes_too:
        columns = None
    else:
        raise PromptError(
            f"{path.name} needs the columns {','.join(SIMPLE_COLUMNS)} for points, "
            f"{','.join(BOX_COLUMNS)} for boxes, or both (or napari's "
            f"{','.join(NAPARI_COLUMNS)}); it has {','.join(header)}."
        )
    points, boxes = _split(rows, columns, boxes_too, path.name)
    try:
        prompts = _points(points, columns, path.name) if points else {}
        box_prompts = _boxes(boxes, path.name)
    except (ValueError, ArithmeticError) as exc:
        raise PromptError(f"{path.name} has a value that is not a number ({exc}).") from None
    return dict(sorted(with_boxes(prompts, box_prompts).items()))


def _split(
    rows: list[tuple[int, dict]], columns: tuple | None, boxes_too: bool, name: str
) -> tuple[list[dict], list[dict]]:
    """The point rows and the box rows; a row filling both column sets, or neither, is
    refused."""
    if not boxes_too:
        return [r for _, r in rows], []
    point_fields = ("x", "y", "label") if columns else ()
    points, boxes = [], []
    for line, row in rows:
        is_point = bool(point_fields) and any(row.get(c) for c in point_fields)
        is_box = any(row.get(c) for c in BOX_FIELDS)
        if is_point == is_box:
            what = "both a point and a box" if is_point else "neither a point nor a box"
            raise PromptError(f"{name} line {line} gives {what}; fill one set of columns.")
        (points if is_point else boxes).append(row)
    return points, boxes


def _points(
    rows: list[dict], columns: tuple[str, str, str], name: str
) -> dict[tuple[int, int], FramePrompt]:
    frame, y, x = columns
    frames = [_integer(r[frame]) for r in rows]
    data = np.array([[f, float(r[y]), float(r[x])] for f, r in zip(frames, rows, strict=True)])
    if not np.isfinite(data).all():
        raise PromptError(f"{name} has a coordinate that is not a finite number.")
    labels = [_integer(r["label"]) for r in rows]
    obj_ids = [_integer(r["obj_id"]) for r in rows]
    return prompts_from_points(data, labels, obj_ids)


def _boxes(rows: list[dict], name: str) -> dict[tuple[int, int], tuple[float, ...]]:
    boxes: dict[tuple[int, int], tuple[float, ...]] = {}
    for row in rows:
        key = (_integer(row["frame"]), object_id(_integer(row["obj_id"])))
        if key in boxes:
            raise PromptError(
                f"{name} gives object {key[1]} two boxes on frame {key[0]}; SAM 2 takes one."
            )
        boxes[key] = tuple(float(row[c]) for c in BOX_FIELDS)
    return boxes


def _integer(text: str) -> int:
    """A whole number exactly as written ("12", "1.0" or "True", as pandas may write
    them); "0.4" or "1e400" is refused, and no digit is lost to a float."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return int(lowered == "true")
    try:
        return int(lowered)
    except ValueError:
        pass
    value = Decimal(lowered)  # raises InvalidOperation, an ArithmeticError
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)
