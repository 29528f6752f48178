"""Planning a propagation: which passes run, from where, over which frames."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

from .prompts import PromptError
from .rejoin import UNTILS, RejoinRule, RejoinWatch
from .results import ObjectMask

Direction = Literal["forward", "backward", "both"]
DIRECTIONS = ("forward", "backward", "both")
FrameResult = tuple[int, dict[int, ObjectMask]]
Pass = tuple[int, int, bool]  # anchor, frames after it, reverse


def pass_frames(anchor: int, count: int, reverse: bool) -> range:
    """The frames a pass visits (a reverse pass from frame 0 visits none, as in SAM 2)."""
    if reverse:
        return range(anchor, anchor - count - 1, -1) if anchor > 0 else range(0)
    return range(anchor, anchor + count + 1)


def resume_frames(visits: range, frame: int, dirty: set[int]) -> set[int]:
    """Where a pass stopped after ``frame`` goes on from: the next frame it visits, and
    the dirty frames it has not reached yet."""
    rest = visits[visits.index(frame) + 1 :]
    return set(rest[:1]) | {d for d in dirty if d in rest}


def plan_passes(direction: Direction, low: int, high: int, anchors: Sequence[int]) -> list[Pass]:
    """The passes of a propagation over frames ``low`` to ``high`` from ``anchors``
    (dirty, else prompted frames in the range, sorted): forward from the first, backward
    from the last, from the range's edge when there are none. The range limits the
    frames; it never moves a pass's start, so frames before a correction stay as they
    were."""
    if direction == "forward":
        first = (list(anchors) or [low])[0]
        return [(first, high - first, False)]
    if direction == "backward":
        last = (list(anchors) or [high])[-1]
        return [(last, last - low, True)]
    middle = (list(anchors) or [low])[0]
    return [(middle, high - middle, False), (middle, middle - low, True)]


def untracked_frames(tracked: Iterable[Iterable[int]], low: int, high: int) -> set[int]:
    """Frames from ``low`` to ``high`` missing from some object's ``tracked`` frames."""
    frames = set(range(low, high + 1))
    return set().union(*(frames - set(of_one) for of_one in tracked))


def rejoin_watches(
    passes: list[Pass], until: str, rule: RejoinRule, blocked: set[int]
) -> list[RejoinWatch | None]:
    """What says where each pass re-joins (None for each with ``until="end"``)."""
    if until != "rejoin":
        return [None] * len(passes)
    return [RejoinWatch(rule, pass_frames(*p), blocked) for p in passes]


class Propagation(Iterator[FrameResult]):
    """The frames of one propagation as they are computed.

    ``total`` is how many frames it yields at most: a re-track stops early where it
    re-joins its previous track. Afterwards ``retracked`` is the first and last frame it
    yielded (None: none) and ``rejoined_at`` the frames where its passes re-joined.
    """

    def __init__(
        self, frames: Iterator[FrameResult], total: int, rejoins: list[int] | None = None
    ):
        self._frames = frames
        self.total = total
        self.retracked: tuple[int, int] | None = None
        self._rejoins = [] if rejoins is None else rejoins  # filled in as passes re-join
        self._step = threading.Lock()  # held while a frame is computed

    @property
    def rejoined_at(self) -> tuple[int, ...]:
        return tuple(self._rejoins)

    def __next__(self) -> FrameResult:
        with self._step:
            frame, masks = next(self._frames)
        first, last = self.retracked or (frame, frame)
        self.retracked = (min(first, frame), max(last, frame))
        return frame, masks

    def __enter__(self) -> Propagation:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        """End it after the frame in progress; what was tracked is kept."""
        with self._step:
            self._frames.close()

    def end_if_waiting(self) -> bool:
        """End it if no frame is being computed now; whether it has ended."""
        if not self._step.acquire(blocking=False):
            return False
        try:
            self._frames.close()
        finally:
            self._step.release()
        return True

    def summary(self) -> str:
        """One sentence on what was tracked, e.g. "Re-tracked frames 210-236; the track
        re-joined at 236."."""
        return describe_run(self.retracked, self.rejoined_at)


def describe_run(retracked: tuple[int, int] | None, rejoined_at: Sequence[int]) -> str:
    """The sentence of :meth:`Propagation.summary`."""
    if retracked is None:
        return "No frames were tracked."
    first, last = retracked
    frames = f"frame {first}" if first == last else f"frames {first}–{last}"
    if not rejoined_at:
        return f"Tracked {frames}."
    return f"Re-tracked {frames}; the track re-joined at {' and '.join(map(str, rejoined_at))}."


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise PromptError(f"direction must be one of {', '.join(DIRECTIONS)}.")


def check_until(until: str) -> None:
    if until not in UNTILS:
        raise PromptError(f"until must be one of {', '.join(UNTILS)}.")


def frame_range(start: int | None, end: int | None, n_frames: int) -> tuple[int, int]:
    """The first and last frame of a propagation over ``start`` to ``end`` (inclusive)."""
    low = 0 if start is None else int(start)
    high = n_frames - 1 if end is None else int(end)
    if not 0 <= low <= high < n_frames:
        raise PromptError(
            f"frames {low} to {high} are not a range of this video's frames 0 to {n_frames - 1}."
        )
    return low, high


def count_frames(passes: list[Pass]) -> int:
    """How many distinct frames the passes visit."""
    return len(set().union(*(pass_frames(*p) for p in passes)))
