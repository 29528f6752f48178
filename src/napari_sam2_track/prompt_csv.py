"""Prompt points from CSV files, in two forms.

- simple: ``frame,obj_id,x,y,label``
- napari's own, written when a Points layer is saved: ``axis-0`` (frame), ``axis-1``
  (row = y), ``axis-2`` (column = x), plus the ``label`` and ``obj_id`` features
  (an ``index`` column, if present, is ignored).
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import numpy as np

from .prompts import FramePrompt, PromptError, prompts_from_points

SIMPLE_COLUMNS = ("frame", "obj_id", "x", "y", "label")
NAPARI_COLUMNS = ("axis-0", "axis-1", "axis-2", "label", "obj_id")


def read_prompts_csv(path: str | Path) -> dict[tuple[int, int], FramePrompt]:
    """One prompt per (frame, object id) from a CSV of points."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
            header = [name.strip() for name in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PromptError(f"the prompts file {path} could not be read ({exc}).") from None
    if not rows:
        raise PromptError(f"the prompts file {path.name} holds no points.")
    rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in rows]
    if set(SIMPLE_COLUMNS) <= set(header):
        frame, y, x = "frame", "y", "x"
    elif set(NAPARI_COLUMNS) <= set(header):
        frame, y, x = "axis-0", "axis-1", "axis-2"
    else:
        raise PromptError(
            f"{path.name} needs the columns {','.join(SIMPLE_COLUMNS)} (or napari's "
            f"{','.join(NAPARI_COLUMNS)}); it has {','.join(header)}."
        )
    try:
        frames = [_integer(r[frame]) for r in rows]
        data = np.array([[f, float(r[y]), float(r[x])] for f, r in zip(frames, rows, strict=True)])
        labels = [_integer(r["label"]) for r in rows]
        obj_ids = [_integer(r["obj_id"]) for r in rows]
    except (ValueError, ArithmeticError) as exc:
        raise PromptError(f"{path.name} has a value that is not a number ({exc}).") from None
    if not np.isfinite(data).all():
        raise PromptError(f"{path.name} has a coordinate that is not a finite number.")
    return prompts_from_points(data, labels, obj_ids)


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
