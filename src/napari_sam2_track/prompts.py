"""Prompts as plain data: what the user gave SAM 2 on which frame for which object.

Coordinates here are SAM 2's: points are ``(x, y)`` = (column, row) in pixels of the
original frame. napari layers hold ``(frame, row, column)``;
:func:`prompts_from_points` converts.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .errors import UserError

POSITIVE, NEGATIVE = 1, 0
#: Object ids are label values of the masks layer (uint16), and 0 is its background.
MAX_OBJECT_ID = 2**16 - 1


class PromptError(UserError):
    """A prompt that cannot be used; the message is one sentence for the user."""


def whole_number(value: object, what: str) -> int:
    """``value`` as an int if it is a whole number (3, 3.0, numpy ints); else refused."""
    if isinstance(value, bool | np.bool_):
        raise PromptError(f"{what} must be a whole number, not {value!r}.")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    raise PromptError(f"{what} must be a whole number, not {value!r}.")


def object_id(value: object) -> int:
    """A valid object id (1 to :data:`MAX_OBJECT_ID`) from ``value``, else refused."""
    obj_id = whole_number(value, "an object id")
    if not 1 <= obj_id <= MAX_OBJECT_ID:
        raise PromptError(f"object ids run from 1 to {MAX_OBJECT_ID}; {obj_id} is not one.")
    return obj_id


@dataclass(frozen=True, eq=False)
class FramePrompt:
    """The prompt of one object on one frame: points and/or a box, or a mask."""

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1
    mask: np.ndarray | None = None

    def __post_init__(self):
        points, labels = _points(self.points), _labels(self.labels)
        if len(points) != len(labels):
            raise PromptError(f"{len(points)} points were given with {len(labels)} labels.")
        if self.mask is not None and (len(points) or self.box is not None):
            raise PromptError("a frame's prompt is either points and a box, or a mask.")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "labels", labels)
        if self.box is not None:
            x0, y0, x1, y1 = _box(self.box)
            object.__setattr__(self, "box", (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=bool)
            if mask.ndim != 2:
                raise PromptError(f"a mask prompt must be 2-D, not of shape {mask.shape}.")
            object.__setattr__(self, "mask", mask)

    @property
    def empty(self) -> bool:
        return len(self.points) == 0 and self.box is None and self.mask is None

    def __eq__(self, other) -> bool:
        if not isinstance(other, FramePrompt):
            return NotImplemented
        same_mask = (self.mask is None and other.mask is None) or (
            self.mask is not None
            and other.mask is not None
            and np.array_equal(self.mask, other.mask)
        )
        return (
            np.array_equal(self.points, other.points)
            and np.array_equal(self.labels, other.labels)
            and self.box == other.box
            and same_mask
        )

    def check_fits(self, frame: int, n_frames: int, height: int, width: int) -> None:
        """Raise :class:`PromptError` if the prompt lies off the video."""
        if not 0 <= frame < n_frames:
            raise PromptError(
                f"frame {frame} does not exist: the video has frames 0 to {n_frames - 1}."
            )
        for x, y in self.points:
            if not (0 <= x < width and 0 <= y < height):
                raise PromptError(
                    f"the point ({x:g}, {y:g}) on frame {frame} is outside the "
                    f"{width}x{height} image."
                )
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x1 < 0 or y1 < 0 or x0 >= width or y0 >= height:
                raise PromptError(f"the box on frame {frame} lies outside the image.")
        if self.mask is not None and self.mask.shape != (height, width):
            h, w = self.mask.shape
            raise PromptError(
                f"the mask for frame {frame} is {w}x{h} but the video is {width}x{height}."
            )


def _points(points: object) -> np.ndarray:
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise PromptError("points must be (x, y) pairs of numbers.") from None
    if array.size == 0:
        return np.zeros((0, 2), np.float32)
    if array.ndim != 2 or array.shape[1] != 2:
        raise PromptError(f"points must be (x, y) pairs, not an array of shape {array.shape}.")
    if not np.isfinite(array).all():
        raise PromptError("a point has a coordinate that is not a finite number.")
    return array.astype(np.float32)


def _labels(labels: object) -> np.ndarray:
    try:
        array = np.asarray(labels, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        array = np.full(1, np.nan)
    if not np.isin(array, (POSITIVE, NEGATIVE)).all():
        raise PromptError("point labels must be 1 (on the object) or 0 (not on it).")
    return array.astype(np.int32)


def _box(box: object) -> tuple[float, float, float, float]:
    try:
        values = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        values = np.zeros(0)
    if values.shape != (4,) or not np.isfinite(values).all():
        raise PromptError("a box must be four finite numbers: x0, y0, x1, y1.")
    x0, y0, x1, y1 = (float(v) for v in values)
    return x0, y0, x1, y1


class PromptSet:
    """Every prompt of a session, keyed by (frame, object id)."""

    def __init__(self):
        self._prompts: dict[tuple[int, int], FramePrompt] = {}

    def set(self, frame: int, obj_id: int, prompt: FramePrompt) -> None:
        if prompt.empty:
            self._prompts.pop((frame, obj_id), None)
        else:
            self._prompts[(int(frame), int(obj_id))] = prompt

    def get(self, frame: int, obj_id: int) -> FramePrompt | None:
        return self._prompts.get((frame, obj_id))

    def remove(self, frame: int, obj_id: int) -> bool:
        return self._prompts.pop((frame, obj_id), None) is not None

    def remove_object(self, obj_id: int) -> list[int]:
        frames = [f for f, o in self._prompts if o == obj_id]
        for frame in frames:
            del self._prompts[(frame, obj_id)]
        return sorted(frames)

    def frames(self, obj_id: int | None = None) -> list[int]:
        return sorted({f for f, o in self._prompts if obj_id is None or o == obj_id})

    def object_ids(self) -> list[int]:
        return sorted({o for _, o in self._prompts})

    def copy(self) -> PromptSet:
        """Another set of the same prompts (prompts do not change once made)."""
        other = PromptSet()
        other._prompts = dict(self._prompts)
        return other

    def items(self) -> list[tuple[tuple[int, int], FramePrompt]]:
        return sorted(self._prompts.items(), key=lambda item: item[0])

    def __len__(self) -> int:
        return len(self._prompts)

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self._prompts


def prompts_from_points(
    data: np.ndarray, labels: Iterable[int], obj_ids: Iterable[int]
) -> dict[tuple[int, int], FramePrompt]:
    """Group napari point rows ``(frame, row, col)`` into one prompt per frame and object.

    Within a prompt, points keep the order they have in ``data``.
    """
    data = np.asarray(data, dtype=np.float64).reshape(-1, 3)
    labels = np.asarray(list(labels))  # as given: FramePrompt refuses all but 0 and 1
    obj_ids = np.asarray([object_id(o) for o in obj_ids], dtype=np.int64)
    if not len(data) == len(labels) == len(obj_ids):
        raise PromptError("every point needs a label and an object id.")
    frames = np.round(data[:, 0]).astype(np.int64)
    grouped: dict[tuple[int, int], FramePrompt] = {}
    for frame, obj_id in sorted(set(zip(frames.tolist(), obj_ids.tolist(), strict=True))):
        rows = (frames == frame) & (obj_ids == obj_id)
        xy = data[rows][:, [2, 1]]  # (row, col) -> (x, y)
        grouped[(frame, obj_id)] = FramePrompt(points=xy, labels=labels[rows])
    return grouped


def with_boxes(
    prompts: dict[tuple[int, int], FramePrompt], boxes: dict[tuple[int, int], tuple]
) -> dict[tuple[int, int], FramePrompt]:
    """Point prompts and box prompts ``(x0, y0, x1, y1)`` as one prompt per (frame,
    object id), an object's points and box on one frame together."""
    merged = dict(prompts)
    for key, box in boxes.items():
        given = merged.get(key, FramePrompt())
        merged[key] = dataclasses.replace(given, box=tuple(box))
    return merged
