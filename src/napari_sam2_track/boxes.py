"""The one box convention, and the conversions to formats that mandate their own.

A :data:`Box` is COCO's ``(x, y, width, height)`` in whole pixels, measured on pixel
edges: pixel column ``i`` spans ``[i, i + 1)``. ``x`` and ``y`` are the column and row
of the box's top-left pixel; ``width`` and ``height`` count its pixels. A mask covering
columns 2, 3 and 4 has ``x = 2`` and ``width = 3``.

Its edges (:func:`box_edges`) are ``x0 = x`` and ``y0 = y`` (inclusive, the top-left
corner of the top-left pixel) and ``x1 = x + width`` and ``y1 = y + height``
(exclusive, the bottom-right corner of the bottom-right pixel), so
``image[y0:y1, x0:x1]`` cuts the box out.
"""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]
Edges = tuple[int, int, int, int]


def mask_to_box(mask: np.ndarray) -> Box | None:
    """The box of a boolean mask; None if it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def box_edges(box: Box) -> Edges:
    """``(x0, y0, x1, y1)``: the box's pixel edges, ``x1`` and ``y1`` exclusive."""
    x, y, width, height = box
    return x, y, x + width, y + height


def box_from_edges(x0: int, y0: int, x1: int, y1: int) -> Box:
    """Inverse of :func:`box_edges`."""
    return x0, y0, x1 - x0, y1 - y0


def yolo_box(box: Box, image_width: int, image_height: int) -> tuple[float, ...]:
    """YOLO's ``(cx, cy, w, h)``: the box's centre and size as fractions of the image."""
    x, y, width, height = box
    return (
        (x + width / 2) / image_width,
        (y + height / 2) / image_height,
        width / image_width,
        height / image_height,
    )
