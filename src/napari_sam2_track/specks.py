"""Specks: small pieces of a mask far from its main body, left out of its box.

SAM 2 often adds a few stray pixels away from the object; a box spanning every pixel
would then span the frame. A piece (8-connected) is a speck when it is small next to
the mask's largest piece and lies well away from that piece's box. Boxes leave specks
out; masks keep them unless asked (:func:`remove_specks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .boxes import Box, mask_to_box
from .errors import UserError


@dataclass(frozen=True)
class SpeckRule:
    """When a piece of a mask is a speck.

    Parameters
    ----------
    area_share : float
        A piece is small when its area is at most this share of the largest piece's
        (0 makes no piece a speck).
    gap_share : float
        It is far when the gap between its box and the largest piece's box is more than
        this share of that box's longer side.

    The defaults leave out what SAM 2 strews a few pixels off an object, and keep a
    part an occluder cut off, which is rarely under a tenth of the rest.
    """

    area_share: float = 0.1
    gap_share: float = 0.05

    def __post_init__(self) -> None:
        if not (0.0 <= self.area_share < 1.0 and 0.0 <= self.gap_share < float("inf")):
            raise UserError(
                "a speck's area share must be from 0 to below 1, and its gap share 0 or more."
            )


DEFAULT_SPECKS = SpeckRule()
KEEP_SPECKS = SpeckRule(area_share=0.0)  # every piece counts


def box_without_specks(mask: np.ndarray, rule: SpeckRule = DEFAULT_SPECKS) -> Box | None:
    """The box of a mask's pieces that are not specks; None for an empty mask."""
    box = mask_to_box(mask)
    pieces = _pieces(mask, box, rule)
    if pieces is None:
        return box
    x, y, _, slices, kept = pieces
    rows = [slices[i][0] for i in kept]
    cols = [slices[i][1] for i in kept]
    top, left = min(r.start for r in rows), min(c.start for c in cols)
    bottom, right = max(r.stop for r in rows), max(c.stop for c in cols)
    return x + left, y + top, right - left, bottom - top


def remove_specks(mask: np.ndarray, rule: SpeckRule = DEFAULT_SPECKS) -> np.ndarray:
    """The mask without its specks (the mask itself when it has none)."""
    pieces = _pieces(mask, mask_to_box(mask), rule)
    if pieces is None:
        return mask
    x, y, labels, slices, kept = pieces
    keep = np.zeros(len(slices) + 1, bool)
    keep[[i + 1 for i in kept]] = True
    cleaned = np.zeros(mask.shape, bool)
    height, width = labels.shape
    cleaned[y : y + height, x : x + width] = keep[labels]
    return cleaned


def _pieces(mask: np.ndarray, box: Box | None, rule: SpeckRule):
    """The mask's pieces within its box: its corner, their labels and slices, and the
    indices of those kept; None when no piece can be a speck."""
    from scipy import ndimage

    if box is None or rule.area_share == 0:
        return None
    x, y, width, height = box
    labels, count = ndimage.label(mask[y : y + height, x : x + width], np.ones((3, 3), bool))
    if count < 2:
        return None
    slices = ndimage.find_objects(labels)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return x, y, labels, slices, _kept(slices, areas, rule)


def _kept(slices: list[tuple[slice, slice]], areas: np.ndarray, rule: SpeckRule) -> list[int]:
    main = int(np.argmax(areas))
    rows, cols = slices[main]
    reach = rule.gap_share * max(rows.stop - rows.start, cols.stop - cols.start)
    kept = []
    for index, (r, c) in enumerate(slices):
        small = areas[index] <= rule.area_share * areas[main]
        gap = max(
            r.start - rows.stop, rows.start - r.stop, c.start - cols.stop, cols.start - c.stop
        )
        if index == main or not small or gap <= reach:
            kept.append(index)
    return kept
