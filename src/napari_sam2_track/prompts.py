"""Prompts as plain data: what the user gave SAM 2 on which frame for which object.

Coordinates here are SAM 2's: points are ``(x, y)`` = (column, row) in pixels of the
original frame. napari layers hold ``(frame, row, column)``;
:func:`prompts_from_points` converts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .errors import UserError

POSITIVE, NEGATIVE = 1, 0


class PromptError(UserError):
    """A prompt that cannot be used; the message is one sentence for the user."""


@dataclass(frozen=True, eq=False)
class FramePrompt:
    """The prompt of one object on one frame: points and/or a box, or a mask."""

    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    box: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1
    mask: np.ndarray | None = None

    def __post_init__(self):
        points = np.asarray(self.points, dtype=np.float32).reshape(-1, 2)
        labels = np.asarray(self.labels, dtype=np.int32).reshape(-1)
        if len(points) != len(labels):
            raise PromptError(f"{len(points)} points were given with {len(labels)} labels.")
        if not np.isin(labels, (POSITIVE, NEGATIVE)).all():
            raise PromptError("point labels must be 1 (on the object) or 0 (not on it).")
        if self.mask is not None and (len(points) or self.box is not None):
            raise PromptError("a frame's prompt is either points and a box, or a mask.")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "labels", labels)
        if self.box is not None:
            x0, y0, x1, y1 = (float(v) for v in self.box)
            object.__setattr__(self, "box", (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        if self.mask is not None:
            object.__setattr__(self, "mask", np.asarray(self.mask, dtype=bool))

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
    labels = np.asarray(list(labels), dtype=np.int64)
    obj_ids = np.asarray(list(obj_ids), dtype=np.int64)
    if not len(data) == len(labels) == len(obj_ids):
        raise PromptError("every point needs a label and an object id.")
    frames = np.round(data[:, 0]).astype(np.int64)
    grouped: dict[tuple[int, int], FramePrompt] = {}
    for frame, obj_id in sorted(set(zip(frames.tolist(), obj_ids.tolist(), strict=True))):
        rows = (frames == frame) & (obj_ids == obj_id)
        xy = data[rows][:, [2, 1]]  # (row, col) -> (x, y)
        grouped[(frame, obj_id)] = FramePrompt(points=xy, labels=labels[rows])
    return grouped
