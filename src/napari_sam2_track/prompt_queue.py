"""Prompt edits waiting for SAM 2, and what a propagation worker reports (no Qt here).

Edits arrive on the main thread faster than SAM 2 takes them in; the queue keeps only
the newest per frame and object, and a worker thread applies them in turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .engine import SessionBusyError, TrackingSession
from .prompts import FramePrompt
from .rejoin import Until

if TYPE_CHECKING:
    from .label_volume import DrawnLabels


@dataclass(frozen=True)
class PreviewShown:
    """A queued prompt change was run through SAM 2 on ``frame`` before propagating."""

    frame: int


@dataclass(frozen=True)
class PropagationPlanned:
    """The propagation will track ``total`` frames."""

    total: int


@dataclass(frozen=True)
class FrameTracked:
    """The propagation tracked ``frame``; ``labels``: its label image, drawn in the
    worker (None: the viewer renders it)."""

    frame: int
    labels: DrawnLabels | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PropagationEnded:
    """The propagation ended; ``summary`` says what it tracked (see ``Propagation``)."""

    summary: str


PropagationMessage = PreviewShown | PropagationPlanned | FrameTracked | PropagationEnded


class PromptQueue:
    """Prompt changes (None: a removal) by (frame, object id), newest wins; thread-safe."""

    def __init__(self) -> None:
        self._pending: dict[tuple[int, int], FramePrompt | None] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def schedule(self, frame: int, obj_id: int, prompt: FramePrompt | None) -> None:
        """Queue a prompt (None: its removal), replacing one queued for the same key."""
        with self._lock:
            self._pending[(frame, obj_id)] = prompt

    def discard_object(self, obj_id: int) -> None:
        """Forget the queued changes of an object that is gone."""
        with self._lock:
            self._pending = {k: p for k, p in self._pending.items() if k[1] != obj_id}

    def _take(self) -> tuple[tuple[int, int], FramePrompt | None] | None:
        with self._lock:
            return self._pending.popitem() if self._pending else None

    def _requeue(self, key: tuple[int, int], prompt: FramePrompt | None) -> None:
        with self._lock:  # a newer edit that arrived meanwhile wins
            self._pending.setdefault(key, prompt)

    def apply(self, session: TrackingSession) -> Iterator[int]:
        """Run the queued changes through SAM 2, yielding each frame done; stops early,
        leaving the rest queued, when the session is propagating."""
        # An edit would end an open propagation (see TrackingSession); queued ones wait.
        while not session.propagating and (taken := self._take()) is not None:
            (frame, obj_id), prompt = taken
            try:
                if prompt is None:
                    session.clear_prompt(frame, obj_id)
                else:
                    session.apply_prompt(frame, obj_id, prompt)
            except SessionBusyError:
                self._requeue((frame, obj_id), prompt)
                return
            yield frame


def propagation_messages(
    session: TrackingSession,
    queue: PromptQueue,
    direction: str = "forward",
    start: int | None = None,
    end: int | None = None,
    until: Until = "rejoin",
    prepare: Callable[[int], DrawnLabels | None] | None = None,
) -> Iterator[PropagationMessage]:
    """Apply the queued prompts, then propagate; what a propagation worker yields.

    ``prepare(frame)``, run in the worker for each tracked frame, readies what showing
    the frame takes and returns its drawn labels, which its message carries.
    """
    for frame in queue.apply(session):
        yield PreviewShown(frame)
    run = session.propagate(direction, start, end, until=until)
    yield PropagationPlanned(run.total)
    for frame, _masks in run:
        yield FrameTracked(frame, None if prepare is None else prepare(frame))
    yield PropagationEnded(run.summary())
