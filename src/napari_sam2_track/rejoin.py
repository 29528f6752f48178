"""When a re-track has re-joined the track it replaces, so that it can stop there.

After a correction SAM 2's new masks usually fall back onto the old ones a few frames
on. Once every object's new mask has matched its previous one on ``RejoinRule.frames``
frames in a row, the frames after are kept as they were. A frame without a previous
mask never matches, so frames never tracked are always tracked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pycocotools import mask as mask_utils

from .prompts import PromptError
from .results import ObjectMask

#: How far a propagation goes: until its track re-joins the previous one, or to the end.
Until = Literal["rejoin", "end"]
UNTILS = ("rejoin", "end")


@dataclass(frozen=True)
class RejoinRule:
    """When a re-tracked object counts as back on its previous track.

    Parameters
    ----------
    iou : float
        The IoU at which a new mask is the previous one: two runs of SAM 2 on the same
        object differ by boundary pixels, well above 0.9; a drift to another object or
        part falls well below it.
    frames : int
        How many frames in a row must match: one can match by chance where the new
        track crosses the old one; three rule that out without re-tracking far.
    """

    iou: float = 0.9
    frames: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.iou <= 1.0 or self.frames < 1:
            raise PromptError("a re-join needs an IoU in (0, 1] and at least one frame.")


def mask_iou(old: ObjectMask, new: ObjectMask) -> float:
    """Intersection over union of two masks; two empty masks are the same (1.0)."""
    if old.rle["counts"] == new.rle["counts"]:
        return 1.0
    if old.empty and new.empty:
        return 1.0
    return float(mask_utils.iou([new.rle], [old.rle], [0])[0, 0])


def frame_matches(
    previous: Mapping[int, ObjectMask | None], new: Mapping[int, ObjectMask], iou: float
) -> bool:
    """Whether every object's new mask matches its previous one (a missing one never does)."""
    return bool(new) and all(
        previous.get(obj_id) is not None and mask_iou(previous[obj_id], entry) >= iou
        for obj_id, entry in new.items()
    )


def rejoin_index(matches: Iterable[bool], frames: int) -> int | None:
    """The position at which ``frames`` matches in a row first end; None if never."""
    streak = 0
    for position, matched in enumerate(matches):
        streak = streak + 1 if matched else 0
        if streak >= frames:
            return position
    return None


def last_blocked(pass_frames: Sequence[int], blocked: Iterable[int]) -> int:
    """The position in a pass of the last frame it cannot re-join on or before (-1: none).

    Blocked are the frames whose prompts changed and those some object has no mask on:
    the pass must go past all of them before what follows can be kept.
    """
    blocked = set(blocked)
    return max((i for i, f in enumerate(pass_frames) if f in blocked), default=-1)


class RejoinWatch:
    """Follows one pass frame by frame and says when it has re-joined its old track."""

    def __init__(self, rule: RejoinRule, pass_frames: Sequence[int], blocked: Iterable[int]):
        self.rule = rule
        self._free_after = last_blocked(pass_frames, blocked)
        self._position = -1
        self._streak = 0

    def rejoined(
        self, previous: Mapping[int, ObjectMask | None], new: Mapping[int, ObjectMask]
    ) -> bool:
        """Take the pass's next frame in; True once it has re-joined."""
        self._position += 1
        if self._position <= self._free_after:
            return False
        matched = frame_matches(previous, new, self.rule.iou)
        self._streak = self._streak + 1 if matched else 0
        return self._streak >= self.rule.frames
