"""Each object's state on each frame, as small arrays: what the timeline and the object
table draw from, without reading masks again (no Qt here).

Per object and frame it keeps SAM 2's score (NaN: never tracked there) and three flags
(empty mask, prompted, painted); a state is derived from them on demand, so changing
the low-score threshold costs no pass over the results.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

import numpy as np

from .prompts import PromptSet
from .results import TrackResults

_EMPTY, _PROMPTED, _PAINTED = 1, 2, 4


class FrameState(IntEnum):
    """An object's state on a frame; a higher value wins where frames share a pixel."""

    NOT_TRACKED = 0
    TRACKED = 1
    PAINTED = 2
    LOW_SCORE = 3
    NO_MASK = 4
    PROMPTED = 5


#: How each state reads, in tooltips and the legend.
STATE_NAMES = {
    FrameState.NOT_TRACKED: "not tracked yet",
    FrameState.TRACKED: "tracked",
    FrameState.PAINTED: "painted",
    FrameState.LOW_SCORE: "low score",
    FrameState.NO_MASK: "no mask",
    FrameState.PROMPTED: "prompted",
}


class TrackStates:
    """Scores and flags of every object on every frame of one video.

    Parameters
    ----------
    n_frames
        The video's length.
    min_score
        Below this presence score a mask counts as uncertain (:attr:`FrameState.LOW_SCORE`).
    """

    def __init__(self, n_frames: int, min_score: float = 0.5):
        self.n_frames = n_frames
        self.min_score = min_score
        self._scores: dict[int, np.ndarray] = {}
        self._flags: dict[int, np.ndarray] = {}

    @property
    def object_ids(self) -> list[int]:
        return sorted(self._scores)

    def _row(self, obj_id: int) -> tuple[np.ndarray, np.ndarray]:
        if obj_id not in self._scores:
            self._scores[obj_id] = np.full(self.n_frames, np.nan, np.float32)
            self._flags[obj_id] = np.zeros(self.n_frames, np.uint8)
        return self._scores[obj_id], self._flags[obj_id]

    def keep_objects(self, obj_ids: Iterable[int]) -> None:
        """Have a row for each of ``obj_ids`` and none for any other object."""
        wanted = set(obj_ids)
        for obj_id in set(self._scores) - wanted:
            del self._scores[obj_id], self._flags[obj_id]
        for obj_id in wanted:
            self._row(obj_id)

    @classmethod
    def build(
        cls,
        results: TrackResults,
        prompted: Iterable[tuple[int, int]],
        objects: Iterable[int] = (),
        min_score: float = 0.5,
    ) -> TrackStates:
        """The states of every frame; reads every mask chunk, so run it off the viewer.

        ``prompted`` are the (frame, object id) pairs with prompts, ``objects`` the ids
        that get a row even without masks.
        """
        states = cls(results.n_frames, min_score)
        states.keep_objects(objects)
        states._read(iter(results), set(prompted))
        return states

    def update(self, results: TrackResults, prompts: PromptSet, frames: Iterable[int]) -> None:
        """Read ``frames`` again from the results and prompts."""
        frames = sorted(set(frames))
        # Lookups only: a preview worker may be changing the prompts meanwhile.
        prompted = {(f, o) for f in frames for o in self._scores if (f, o) in prompts}
        for scores, flags in zip(self._scores.values(), self._flags.values(), strict=True):
            scores[frames] = np.nan
            flags[frames] = 0
        self._read(((f, results.frame(f)) for f in frames), prompted)

    def _read(self, entries, prompted: set[tuple[int, int]]) -> None:
        for frame, objects in entries:
            for obj_id, entry in objects.items():
                scores, flags = self._row(obj_id)
                scores[frame] = entry.score
                flags[frame] = (_EMPTY if entry.empty else 0) | (_PAINTED if entry.painted else 0)
        for frame, obj_id in prompted:
            self._row(obj_id)[1][frame] |= _PROMPTED

    def states(self, obj_id: int) -> np.ndarray:
        """The object's :class:`FrameState` on every frame, as uint8."""
        scores, flags = self._row(obj_id)
        out = np.full(self.n_frames, FrameState.NOT_TRACKED, np.uint8)
        out[~np.isnan(scores)] = FrameState.TRACKED
        out[scores < self.min_score] = FrameState.LOW_SCORE
        out[(flags & _PAINTED) != 0] = FrameState.PAINTED
        out[(flags & _EMPTY) != 0] = FrameState.NO_MASK
        out[(flags & _PROMPTED) != 0] = FrameState.PROMPTED
        return out

    def next_problem(self, obj_id: int, frame: int, step: int = 1) -> int | None:
        """The next frame after ``frame`` (``step`` 1, or -1 for the one before) where the
        object is likely wrong: within the stretch it was tracked on, a frame where it
        has no mask, or one SAM 2 scored below :attr:`min_score` and nobody painted."""
        scores, flags = self._row(obj_id)
        tracked = np.flatnonzero(~np.isnan(scores))
        if not tracked.size:
            return None
        empty, painted = (flags & _EMPTY) != 0, (flags & _PAINTED) != 0
        with np.errstate(invalid="ignore"):
            problem = np.isnan(scores) | empty | ((scores < self.min_score) & ~painted)
        first, last = int(tracked[0]), int(tracked[-1])
        if step > 0:
            ahead = np.flatnonzero(problem[max(frame + 1, first) : last + 1])
            return int(ahead[0]) + max(frame + 1, first) if ahead.size else None
        behind = np.flatnonzero(problem[first : min(frame, last + 1)])
        return int(behind[-1]) + first if behind.size else None

    def score(self, frame: int, obj_id: int) -> float | None:
        value = self._row(obj_id)[0][frame]
        return None if np.isnan(value) else float(value)

    def frames_with_mask(self, obj_id: int) -> int:
        """On how many frames the object has a mask that is not empty."""
        scores, flags = self._row(obj_id)
        return int(np.count_nonzero(~np.isnan(scores) & ((flags & _EMPTY) == 0)))

    def prompted_frames(self, obj_id: int) -> int:
        return int(np.count_nonzero(self._row(obj_id)[1] & _PROMPTED))


def binned_states(states: np.ndarray, width: int) -> np.ndarray:
    """(objects, frames) states as (objects, width) pixel columns, each the highest state
    of the frames it covers (so one prompted or lost frame stays visible at any zoom)."""
    n_frames = states.shape[-1]
    if width <= 0 or n_frames == 0:
        return np.zeros((*states.shape[:-1], max(width, 0)), states.dtype)
    starts = (np.arange(width, dtype=np.int64) * n_frames) // width
    return np.maximum.reduceat(states, starts, axis=-1)
