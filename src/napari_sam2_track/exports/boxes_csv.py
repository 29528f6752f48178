"""Boxes as CSV, in the format of :mod:`napari_sam2_track.box_csv`."""

from __future__ import annotations

from pathlib import Path

from ..box_csv import annotation_rows, write_box_csv
from ..store import Annotation
from ._common import ExportOptions


def write_boxes_csv(annotation: Annotation, target: Path, options: ExportOptions) -> None:
    with open(target, "w", newline="", encoding="utf-8") as handle:
        write_box_csv(handle, annotation_rows(annotation, options.progress))
