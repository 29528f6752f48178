"""Boxes as CSV: ``frame,obj_id,name,class,x0,y0,x1,y1,score``.

``frame`` counts from 0. ``x0, y0`` is the top-left corner of the box's top-left pixel
and ``x1, y1`` the bottom-right corner of its bottom-right pixel, so ``x1`` and ``y1``
are exclusive: a box over pixel columns 2, 3 and 4 has ``x0 = 2`` and ``x1 = 5``, and
``x1 - x0`` is the width in pixels (slicing ``image[y0:y1, x0:x1]`` cuts it out).
``class`` is the object's category, ``object`` when it has none; ``score`` is SAM 2's
presence probability with four decimals. One row per object and frame where the object
has a mask, ordered by frame, then object id.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from ..store import Annotation
from ._common import ExportOptions, class_name, visible

HEADER = ("frame", "obj_id", "name", "class", "x0", "y0", "x1", "y1", "score")


def write_rows(target: Path, rows: Iterable[Iterable]) -> None:
    with open(target, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)


def write_boxes_csv(annotation: Annotation, target: Path, options: ExportOptions) -> None:
    n = annotation.video.n_frames

    def rows():
        for frame in range(n):
            for obj_id, entry in visible(annotation.results.frame(frame)):
                x, y, w, h = entry.box
                name = annotation.object_info(obj_id).name
                yield (
                    frame,
                    obj_id,
                    name,
                    class_name(annotation, obj_id),
                    x,
                    y,
                    x + w,
                    y + h,
                    f"{entry.score:.4f}",
                )
            options.progress(frame + 1, n)

    write_rows(target, rows())
