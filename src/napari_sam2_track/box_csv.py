"""Boxes as CSV: ``frame,obj_id,name,class,x0,y0,x1,y1,score``.

One format for every boxes CSV: a session folder's ``boxes.csv``, the ``boxes_csv``
export and the boxes layer's writer. ``frame`` counts from 0; ``x0, y0, x1, y1`` are
the box's pixel edges (:func:`~napari_sam2_track.boxes.box_edges`; ``x1`` and ``y1``
exclusive, so ``x1 - x0`` is the width in pixels). ``class`` is the object's category,
``object`` when it has none; ``score`` is SAM 2's presence probability with four
decimals (empty where unknown). One row per object and frame where the object has a
mask, ordered by frame, then object id.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, TextIO

from .boxes import Box, box_edges

if TYPE_CHECKING:
    from .store import Annotation

HEADER = ("frame", "obj_id", "name", "class", "x0", "y0", "x1", "y1", "score")


def box_row(
    frame: int, obj_id: int, name: str, category: str, box: Box, score: float | None
) -> tuple:
    """One CSV row; ``box`` in the one box convention."""
    text = "" if score is None else f"{float(score):.4f}"
    return (frame, obj_id, name, category, *box_edges(box), text)


def annotation_rows(
    annotation: Annotation, progress: Callable[[int, int], None] | None = None
) -> Iterator[tuple]:
    """The rows of every box in a session; ``progress(done, total)`` after each frame."""
    n = annotation.video.n_frames
    for frame in range(n):
        for obj_id, entry in sorted(annotation.results.frame(frame).items()):
            if entry.box is not None:
                name = annotation.object_info(obj_id).name
                category = annotation.class_name(obj_id)
                yield box_row(frame, obj_id, name, category, entry.box, entry.score)
        if progress is not None:
            progress(frame + 1, n)


def write_box_csv(handle: TextIO, rows: Iterable[Iterable]) -> None:
    """The header and ``rows`` to a text file opened with ``newline=""``."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
