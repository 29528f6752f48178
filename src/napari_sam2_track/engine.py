"""A tracking session: one video, one model, the prompts and the masks they give.

No Qt here: the napari widget, the command line and the exports all drive this class.
The model's internals sit behind :mod:`.tracking_backend`; this module orchestrates.

Correction semantics. Frames whose prompts changed since the last finished propagation
are *dirty*. A forward propagation starts at the earliest dirty frame in its range (or,
with none, at the earliest prompted frame, else the range's first frame), so after a
correction on frame k only frames k and later change; backward mirrors this from the
latest; "both" runs forward and then backward from the same start. A re-track stops
where its masks have re-joined the previous ones (:mod:`.rejoin`), unless asked to go
to the end; frames never tracked are always tracked. A run stopped in its last pass
leaves dirty the frame after its last one and the dirty frames it had not reached, so
the next run goes on from there.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import propagation as plan
from .errors import UserError
from .model_input import ModelFrames
from .prompts import FramePrompt, PromptError, PromptSet, object_id, whole_number
from .propagation import Direction, FrameResult, Pass, Propagation
from .rejoin import RejoinRule, RejoinWatch, Until
from .results import ObjectMask, TrackResults
from .specks import DEFAULT_SPECKS, SpeckRule, remove_specks

if TYPE_CHECKING:
    from pathlib import Path

    from .tracking_backend import TrackingModel


class SessionBusyError(UserError):
    """The session is propagating; prompts can change once it finishes or is stopped."""


class TrackingSession:
    """Prompts in, masks out, for one video and one model.

    Parameters
    ----------
    source : array-like
        The video, (T, H, W) or (T, H, W, C); frames are read only when needed.
    model : TrackingModel
        A loaded model, e.g. from :func:`napari_sam2_track.sam2_backend.build_model`.
    specks : SpeckRule
        What boxes leave out (:mod:`.specks`).
    remove_specks : bool
        Also take the specks out of the masks themselves (kept as SAM 2 gave them by
        default).
    **tracking_options
        For the model's tracker (``model.start_tracking``): ``prompts_supersede_memory``
        (tracking past a prompt that found its object forgets the tracked frames behind
        it), ``offload_state_to_cpu``, ``feature_cache_bytes`` (the image features kept
        so no frame is encoded twice; 0: none, None: a share of the memory available).

    Notes
    -----
    One propagation at a time; :meth:`stop` works from any thread, between two frames.
    Prompt edits wait for a preview. While a propagation computes a frame, edits and
    another propagation are refused; one left between frames (its loop broken, say)
    is ended by them, as if stopped there.
    """

    def __init__(
        self,
        source: Any,
        model: TrackingModel,
        specks: SpeckRule = DEFAULT_SPECKS,
        remove_specks: bool = False,
        **tracking_options: Any,
    ):
        self.model = model
        self.frames = ModelFrames(source, model.image_size)
        self.n_frames = self.frames.n_frames
        self.height, self.width = self.frames.height, self.frames.width
        self.specks, self.remove_specks = specks, remove_specks
        self.prompts = PromptSet()
        self.results = TrackResults(self.n_frames, self.height, self.width)
        self.results.specks = specks
        #: The model's side of this video: its prompts, memory and passes.
        self.tracker = model.start_tracking(self.frames, self._stored_mask, **tracking_options)
        self._dirty: set[int] = set()
        #: While propagating: the planned dirty frames, and where the run would resume.
        self._resume: tuple[set[int], set[int]] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._open: Propagation | None = None  # the propagation not yet ended

    @classmethod
    def create(
        cls,
        source: Any,
        model: str | None = None,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        image_size: int | None = None,
        random_weights: bool = False,
        progress: Any = None,
        **tracking_options: Any,
    ) -> TrackingSession:
        """Build a SAM 2 model (downloading its checkpoint on first use) and start a
        session on ``source``; the arguments are those of ``build_model``."""
        from .models import DEFAULT_MODEL
        from .sam2_backend import build_model

        loaded = build_model(
            model or DEFAULT_MODEL, checkpoint, device, image_size, random_weights, progress
        )
        return cls(source, loaded, **tracking_options)

    def _stored_mask(self, frame: int, obj_id: int) -> np.ndarray | None:
        entry = self.results.get(frame, obj_id)
        return None if entry is None else entry.mask

    @property
    def memory_window(self) -> int:
        """How many frames behind a frame the model reads memory of."""
        return self.tracker.memory_window

    # ----------------------------------------------------------------- prompts

    @property
    def propagating(self) -> bool:
        """Whether a propagation has started and not yet ended."""
        return self._open is not None

    @property
    def object_ids(self) -> list[int]:
        """The objects with a prompt or a mask somewhere in the video."""
        return sorted(set(self.prompts.object_ids()) | set(self.results.object_ids()))

    def set_prompt(
        self,
        frame: int,
        obj_id: int,
        points: Sequence | np.ndarray | None = None,
        labels: Sequence | np.ndarray | None = None,
        box: Sequence[float] | None = None,
    ) -> ObjectMask | None:
        """Set (replace) one object's points and/or box on a frame; its new mask.

        Points are ``(x, y)`` pixels; labels 1 (on the object) or 0 (not on it). Giving
        no points and no box removes the prompt, as :meth:`clear_prompt` does.
        """
        prompt = FramePrompt(
            points=np.zeros((0, 2)) if points is None else points,
            labels=np.zeros(0) if labels is None else labels,
            box=None if box is None else tuple(box),
        )
        return self.apply_prompt(frame, obj_id, prompt)

    def apply_prompt(self, frame: int, obj_id: int, prompt: FramePrompt) -> ObjectMask | None:
        """Set one object's prompt on a frame, whatever it holds (points and a box, or a
        mask); an empty one removes it. Its new mask, None when removed."""
        if prompt.empty:
            self.clear_prompt(frame, obj_id)
            return None
        return self._apply(frame, obj_id, prompt)

    def set_mask_prompt(self, frame: int, obj_id: int, mask: np.ndarray) -> ObjectMask:
        """Give an object's mask on a frame as its prompt (replacing points or a box)."""
        return self._apply(frame, obj_id, FramePrompt(mask=mask))

    def _apply(self, frame: int, obj_id: int, prompt: FramePrompt) -> ObjectMask:
        frame, obj_id = whole_number(frame, "a frame"), object_id(obj_id)
        prompt.check_fits(frame, self.n_frames, self.height, self.width)
        with self._editing():
            mask, score = self.tracker.preview(frame, obj_id, prompt)
            self.prompts.set(frame, obj_id, prompt)
            self._dirty.add(frame)
            entry = self._entry(mask, score)
            self.results.set(frame, obj_id, entry)
        return entry

    def _entry(self, mask: np.ndarray, score: float) -> ObjectMask:
        if self.remove_specks:
            mask = remove_specks(mask, self.specks)
        return ObjectMask.from_mask(mask, score, self.specks)

    def clear_prompt(self, frame: int, obj_id: int) -> None:
        """Remove an object's prompt on a frame (and the mask that prompt gave there)."""
        with self._editing():
            if not self.prompts.remove(frame, obj_id):
                return
            self.tracker.clear_prompt(frame, obj_id, last=not self.prompts.frames(obj_id))
            self.results.discard(frame, obj_id)
            self._dirty.add(frame)

    def remove_object(self, obj_id: int) -> list[int]:
        """Forget an object everywhere; returns the frames whose masks changed."""
        with self._editing():
            self.prompts.remove_object(obj_id)
            self.tracker.remove_object(obj_id)
            return self.results.remove_object(obj_id)

    @contextlib.contextmanager
    def _editing(self):
        with self._lock:
            self._end_left_propagation(
                "prompts cannot change while propagating; stop it or let it finish."
            )
            yield

    def _end_left_propagation(self, busy: str) -> None:
        """End an open propagation that waits between frames; refuse (``busy``) while
        one computes a frame. Called with the lock held."""
        run, self._open = self._open, None
        if run is not None and not run.end_if_waiting():
            self._open = run
            raise SessionBusyError(busy)

    def restore(
        self, prompts: PromptSet, results: TrackResults, pending: Sequence[int] = ()
    ) -> None:
        """Continue a saved session: replay its prompts into the model, keep its masks.

        The model's memory is rebuilt from the prompted frames; the stored masks are
        taken as they are. ``pending`` are frames whose prompts had changed without a
        finished propagation since (see :attr:`pending_frames`).
        """
        size = (results.n_frames, results.height, results.width)
        if size != (self.n_frames, self.height, self.width):
            raise PromptError("the stored masks do not fit this video.")
        for (frame, obj_id), prompt in prompts.items():
            self._apply(frame, obj_id, prompt)
        self.results = results
        results.specks = self.specks
        self._dirty = set(pending)

    # ------------------------------------------------------------- propagation

    @property
    def pending_frames(self) -> list[int]:
        """Frames whose prompts changed since the last finished propagation; while one
        runs, or after one stopped in its last pass, the frame it would go on from
        instead of the frames it started from."""
        if self._resume is None:
            return sorted(self._dirty)
        planned, resume_at = self._resume
        return sorted((self._dirty - planned) | resume_at)

    def propagate(
        self,
        direction: Direction = "forward",
        start: int | None = None,
        end: int | None = None,
        until: Until = "rejoin",
        rejoin: RejoinRule | None = None,
    ) -> Propagation:
        """Track the prompted objects through the video, one frame at a time.

        Yields ``(frame index, {object id: ObjectMask})`` as each frame is done, so a
        caller can show it and stop between frames (:meth:`stop`, or closing the
        iterator); its ``total`` says how many frames it yields at most, and afterwards
        ``summary()`` what it re-tracked and where it re-joined.
        ``start``/``end`` (inclusive) limit the frames tracked; they do not move where a
        pass begins: forward from the first dirty (else prompted) frame in the range,
        backward from the last; "both" goes forward, then backward, from the first.
        ``until="rejoin"`` stops each pass once it has gone past the changed and
        never-tracked frames and its masks match the previous ones as ``rejoin`` (default
        :class:`RejoinRule()`) says; ``"end"`` tracks to the range's end.
        """
        plan.check_direction(direction)
        plan.check_until(until)
        low, high = plan.frame_range(start, end, self.n_frames)
        with self._lock:  # plan after any prompt edit in progress has landed
            self._end_left_propagation("a propagation is already running in this session.")
            if not self.prompts.frames():
                raise PromptError("there is nothing to propagate: add a prompt first.")
            prompted = [f for f in self.prompts.frames() if low <= f <= high]
            dirty = sorted(f for f in self._dirty if low <= f <= high)
            passes = plan.plan_passes(direction, low, high, dirty or prompted)
            tracked = [self.results.frames_of(o) for o in self.prompts.object_ids()]
            blocked = set(dirty) | plan.untracked_frames(tracked, low, high)
            watches = plan.rejoin_watches(passes, until, rejoin or RejoinRule(), blocked)
            rejoins: list[int] = []
            frames = self._run(passes, watches, set(dirty), rejoins)
            self._open = Propagation(frames, plan.count_frames(passes), rejoins)
            self._stop.clear()
            return self._open

    def stop(self) -> None:
        """Ask a running propagation to stop after the frame in progress."""
        self._stop.set()

    def _run(
        self,
        passes: list[Pass],
        watches: list[RejoinWatch | None],
        planned_dirty: set[int],
        rejoins: list[int],
    ) -> Iterator[FrameResult]:
        finished = False
        self._resume = (planned_dirty, set(planned_dirty))
        try:
            done: set[int] = set()
            for number, ((anchor, count, reverse), watch) in enumerate(
                zip(passes, watches, strict=True)
            ):
                last_pass = number == len(passes) - 1
                visits = plan.pass_frames(anchor, count, reverse)
                with contextlib.closing(self.tracker.track(anchor, count, reverse)) as frames:
                    for frame, predictions in frames:
                        masks = {o: self._entry(*p) for o, p in predictions.items()}
                        previous = {o: self.results.get(frame, o) for o in masks} if watch else {}
                        for obj_id, entry in masks.items():
                            self.results.set(frame, obj_id, entry)
                        if last_pass:  # stopped from here on, the next run goes on from there
                            rest = plan.resume_frames(visits, frame, planned_dirty)
                            self._resume = (planned_dirty, rest)  # one step: read by saves
                        if frame not in done:
                            done.add(frame)
                            yield frame, masks
                        if self._stop.is_set():
                            return
                        if watch is not None and watch.rejoined(previous, masks):
                            rejoins.append(frame)
                            break
            finished = True
        finally:
            # Prompts changed after planning stay dirty for the next run.
            self._dirty -= planned_dirty
            if not finished:
                self._dirty |= self._resume[1]
            self._resume = None
            self._open = None

    def tracking_state_frames(self) -> dict[str, int]:
        """How many frames' outputs the model holds as memory (bounded on long videos)."""
        return {kind: len(frames) for kind, frames in self.tracker.memory_frames().items()}
