"""What the engine needs of a video segmentation model, whatever its family.

:mod:`.sam2_backend` implements it for SAM 2; the engine depends on nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from .model_input import ModelFrames
    from .prompts import FramePrompt

#: ``stored_mask(frame, obj_id)``: the mask kept for an object on a frame, or None.
StoredMask = Callable[[int, int], "np.ndarray | None"]
#: An object's mask on a frame, and the model's probability that the object is there.
Prediction = tuple[np.ndarray, float]


class VideoTracker(Protocol):
    """One video's prompts, memory and passes inside a model."""

    #: How many frames behind a frame the model reads memory of.
    memory_window: int

    def preview(self, frame: int, obj_id: int, prompt: FramePrompt) -> Prediction:
        """Set an object's prompt on a frame, replacing any there; its mask there."""

    def clear_prompt(self, frame: int, obj_id: int, last: bool) -> None:
        """Drop an object's prompt on a frame; ``last`` when it has no other prompt."""

    def remove_object(self, obj_id: int) -> None:
        """Forget an object's prompts and memory."""

    def track(
        self, anchor: int, count: int, reverse: bool
    ) -> Iterator[tuple[int, dict[int, Prediction]]]:
        """One pass from ``anchor`` over ``count`` more frames, recalling the memory it
        reads first and forgetting memory it will not read again as it goes."""

    def encode(self, frame: int) -> None:
        """Compute and keep a frame's image features ahead of a click there; safe to
        call from another thread than the one that prompts and tracks."""

    def is_encoded(self, frame: int) -> bool:
        """Whether a frame's image features are at hand."""

    def memory_frames(self, obj_id: int | None = None) -> dict[str, list[int]]:
        """The prompted ("conditioning") and tracked frames held as memory."""


class TrackingModel(Protocol):
    """A loaded model that can track videos."""

    name: str
    device: Any
    image_size: int
    checkpoint: Path | None

    def calls(self) -> AbstractContextManager:
        """The context the model's own calls run in."""

    def start_tracking(
        self, frames: ModelFrames, stored_mask: StoredMask, **options: Any
    ) -> VideoTracker:
        """A tracker of one video; ``stored_mask`` gives the masks kept so far. Options
        a backend may take: ``prompts_supersede_memory``, ``offload_state_to_cpu``,
        ``feature_cache_bytes`` (None: a default), ``features_on_disk``."""
