"""A tracking session: one video, one SAM 2 model, the prompts and the masks they give.

No Qt here: the napari widget, the command line and the exports all drive this class.

Correction semantics. Frames whose prompts changed since the last finished propagation
are *dirty*. A forward propagation starts at the earliest dirty frame (or, with none,
at the earliest prompted frame), so after a correction on frame k only frames k and
later change; backward mirrors this from the latest; "both" runs forward and then
backward from the same start.

Memory semantics. A prompt that finds its object (a mask, and SAM 2 says the object is
there) supersedes the tracked frames behind it: tracking on past it reads the prompted
frames and the frames tracked after it, never the tracked frames before it (after it,
tracking backward), whose masks the prompt corrects or at best repeats. Read beside the
fix, the drifted masks pull the tracking back to where it went wrong. SAM 2's predictor
has a like option, ``clear_non_cond_mem_around_input`` (off by default), which clears
that memory once when a propagation starts, so a propagation from an earlier frame tracks
it again. A prompt that finds no object (a negative click that empties the mask) says
where the object is not, not what it looks like, so the memory behind it stays.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .errors import UserError
from .model_input import ModelFrames
from .prompts import FramePrompt, PromptError, PromptSet
from .results import ObjectMask, TrackResults

if TYPE_CHECKING:
    from pathlib import Path

    from .predictor import LoadedModel

Direction = Literal["forward", "backward", "both"]
DIRECTIONS = ("forward", "backward", "both")
FrameResult = tuple[int, dict[int, ObjectMask]]


def _pass_frames(anchor: int, count: int, reverse: bool) -> range:
    """The frames SAM 2's propagate_in_video visits (it skips reverse passes from 0)."""
    if reverse:
        return range(anchor, anchor - count - 1, -1) if anchor > 0 else range(0)
    return range(anchor, anchor + count + 1)


def _finds_its_object(out: dict | None) -> bool:
    """Whether a frame's output shows its object: some mask, and a score saying present."""
    return (
        out is not None
        and bool((out["pred_masks"] > 0).any())
        and bool((out["object_score_logits"] > 0).all())
    )


class Propagation(Iterator[FrameResult]):
    """The frames of one propagation as they are computed; ``total`` is how many."""

    def __init__(self, frames: Iterator[FrameResult], total: int):
        self._frames = frames
        self.total = total

    def __next__(self) -> FrameResult:
        return next(self._frames)

    def close(self) -> None:
        self._frames.close()


class SessionBusyError(UserError):
    """The session is propagating; prompts can change once it finishes or is stopped."""


def new_inference_state(
    predictor: Any, images: ModelFrames, device: Any, offload_state_to_cpu: bool = False
) -> dict:
    """The dict SAM2VideoPredictor.init_state makes, but over frames made on demand.

    Keys and meanings follow sam2/sam2_video_predictor.py's init_state; a test compares
    the two so a change in sam2 shows up.
    """
    import torch

    return {
        "images": images,
        "num_frames": len(images),
        "offload_video_to_cpu": True,
        "offload_state_to_cpu": offload_state_to_cpu,
        "video_height": images.height,
        "video_width": images.width,
        "device": device,
        "storage_device": torch.device("cpu") if offload_state_to_cpu else device,
        "point_inputs_per_obj": {},
        "mask_inputs_per_obj": {},
        "cached_features": {},
        "constants": {},
        "obj_id_to_idx": OrderedDict(),
        "obj_idx_to_id": OrderedDict(),
        "obj_ids": [],
        "output_dict_per_obj": {},
        "temp_output_dict_per_obj": {},
        "frames_tracked_per_obj": {},
    }


class TrackingSession:
    """Prompts in, masks out, for one video and one model.

    Thread-safety: one propagation at a time; :meth:`stop` may be called from any
    thread and takes effect between two frames. Prompt edits wait for a preview in
    progress and are refused with :class:`SessionBusyError` during a propagation.
    """

    def __init__(
        self,
        source: Any,
        model: LoadedModel,
        offload_state_to_cpu: bool = False,
        prompts_supersede_memory: bool = True,
    ):
        self.model = model
        #: Whether tracking past a prompt that found its object forgets the tracked
        #: frames behind it (see the module's memory semantics).
        self.prompts_supersede_memory = prompts_supersede_memory
        self.frames = ModelFrames(source, model.image_size)
        self.n_frames, self.height, self.width = (
            self.frames.n_frames,
            self.frames.height,
            self.frames.width,
        )
        self.prompts = PromptSet()
        self.results = TrackResults(self.n_frames, self.height, self.width)
        self._state = new_inference_state(
            model.predictor, self.frames, model.device, offload_state_to_cpu
        )
        predictor = model.predictor
        # How far back SAM 2 looks: mask memories and (where used) object pointers of
        # recent frames.
        pointer_window = (
            predictor.max_obj_ptrs_in_encoder if predictor.use_obj_ptrs_in_encoder else 0
        )
        self.memory_window = max(
            predictor.num_maskmem * predictor.memory_temporal_stride_for_eval, pointer_window
        )
        # How many frames before a frame SAM 2 reads the mask memory of; object pointers
        # reach further back (memory_window) but weigh far less.
        self.mask_memory_window = (
            predictor.num_maskmem - 1
        ) * predictor.memory_temporal_stride_for_eval
        self._dirty: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._propagating = False

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
        prompts_supersede_memory: bool = True,
    ) -> TrackingSession:
        """Build the model (downloading its checkpoint on first use) and start a session."""
        from .models import DEFAULT_MODEL
        from .predictor import build_model

        loaded = build_model(
            model or DEFAULT_MODEL, checkpoint, device, image_size, random_weights, progress
        )
        return cls(source, loaded, prompts_supersede_memory=prompts_supersede_memory)

    # ----------------------------------------------------------------- prompts

    @property
    def propagating(self) -> bool:
        return self._propagating

    @property
    def object_ids(self) -> list[int]:
        return sorted(set(self.prompts.object_ids()) | set(self.results.object_ids()))

    def set_prompt(
        self,
        frame: int,
        obj_id: int,
        points: Sequence | np.ndarray | None = None,
        labels: Sequence | np.ndarray | None = None,
        box: Sequence[float] | None = None,
    ) -> ObjectMask | None:
        """Set (replace) one object's points and/or box on a frame; returns its new mask.

        Points are ``(x, y)`` pixels; labels 1 (on the object) or 0 (not on it). Giving
        no points and no box removes the prompt, as :meth:`clear_prompt` does.
        """
        prompt = FramePrompt(
            points=np.zeros((0, 2)) if points is None else points,
            labels=np.zeros(0) if labels is None else labels,
            box=None if box is None else tuple(box),
        )
        if prompt.empty:
            self.clear_prompt(frame, obj_id)
            return None
        return self._apply(frame, obj_id, prompt)

    def set_mask_prompt(self, frame: int, obj_id: int, mask: np.ndarray) -> ObjectMask:
        """Give an object's mask on a frame as its prompt (replacing points or a box)."""
        return self._apply(frame, obj_id, FramePrompt(mask=mask))

    def _apply(self, frame: int, obj_id: int, prompt: FramePrompt) -> ObjectMask:
        frame, obj_id = int(frame), int(obj_id)
        prompt.check_fits(frame, self.n_frames, self.height, self.width)
        predictor = self.model.predictor
        with self._editing(), self.model.autocast():
            self._recall_memory_before(
                frame, [obj_id], self._tracked_in_reverse(frame, obj_id), past_frame=False
            )
            if prompt.mask is not None:
                _, obj_ids, masks = predictor.add_new_mask(self._state, frame, obj_id, prompt.mask)
            else:
                has_points = len(prompt.points) > 0
                with self._stored_mask_as_previous_logits(frame, obj_id):
                    _, obj_ids, masks = predictor.add_new_points_or_box(
                        self._state,
                        frame,
                        obj_id,
                        points=prompt.points if has_points else None,
                        labels=prompt.labels if has_points else None,
                        box=prompt.box,
                        clear_old_points=True,
                        normalize_coords=True,
                    )
            self.prompts.set(frame, obj_id, prompt)
            self._dirty.add(frame)
            index = list(obj_ids).index(obj_id)
            mask = (masks[index, 0] > 0).cpu().numpy()
            entry = ObjectMask.from_mask(mask, self._object_score(frame, obj_id))
            self.results.set(frame, obj_id, entry)
        return entry

    @contextlib.contextmanager
    def _stored_mask_as_previous_logits(self, frame: int, obj_id: int):
        """Let clicks on a frame refine the mask already stored there.

        SAM 2 feeds an object's previous mask logits on a frame to the mask decoder with
        new clicks, so a correction refines the mask instead of starting over. It finds
        them only in its own outputs, which :meth:`_forget_old_memory` drops on long
        videos and a restored session never had; there the stored mask stands in, made
        into logits the way SAM 2 makes a mask into logits (+10 inside, -10 outside).
        """
        import torch

        entry = self.results.get(frame, obj_id)
        slot = None if entry is None else self._empty_previous_output_slot(frame, obj_id)
        if slot is None:
            yield
            return
        size = self.model.predictor.image_size // 4  # SAM 2's low-resolution masks
        coverage = torch.nn.functional.interpolate(
            torch.from_numpy(entry.mask)[None, None].float(), size=(size, size), mode="area"
        )
        placeholder = {"pred_masks": coverage * 20.0 - 10.0}
        slot[frame] = placeholder
        try:
            yield
        finally:  # SAM 2 replaced it with the new output, unless the call failed
            if slot.get(frame) is placeholder:
                del slot[frame]

    def _tracked_in_reverse(self, frame: int, obj_id: int) -> bool:
        """Whether SAM 2 last tracked the object to this frame backward (so a click there
        reads the memory of the frames after it)."""
        obj_idx = self._state["obj_id_to_idx"].get(obj_id)
        tracked = None if obj_idx is None else self._state["frames_tracked_per_obj"][obj_idx]
        return bool(tracked and tracked.get(frame, {}).get("reverse", False))

    def _recall_memory_before(
        self, frame: int, obj_ids: Sequence[int], reverse: bool, past_frame: bool
    ) -> None:
        """Give SAM 2 back the memory of the frames it reads before ``frame``.

        SAM 2 reads the mask memory of the ``mask_memory_window`` frames before a frame
        (after it, tracking backward) both to take clicks there and to track on from
        there. :meth:`_forget_old_memory` drops that memory once a pass has gone on, and
        a restored session never had it, so a correction would otherwise be read against
        the prompted frames alone, far away, and a click that should trim the mask can
        empty it. Each missing frame's memory is encoded again from its stored mask (the
        mask the person saw and kept), as SAM 2 encodes a mask prompt: at most
        ``mask_memory_window`` image encodings, each shared by the objects.

        Memory reaches back no further than the nearest prompt that supersedes it; the
        one on ``frame`` itself counts when tracking goes on ``past_frame`` (a click
        there reads the memory behind it, as SAM 2 does). Memory held behind that
        prompt is dropped, so a click reads what tracking on from there would.
        """
        import torch

        state, predictor = self._state, self.model.predictor
        indices = [state["obj_id_to_idx"][o] for o in obj_ids if o in state["obj_id_to_idx"]]
        step = 1 if reverse else -1
        reach = {}  # per object: how many frames behind ``frame`` it reads
        for obj_idx in indices:
            prompt = self._superseding_prompt_behind(obj_idx, frame, reverse, past_frame)
            if prompt is None:
                reach[obj_idx] = self.mask_memory_window
            else:
                self._drop_memory_behind(obj_idx, prompt, reverse)
                reach[obj_idx] = abs(prompt - frame) - 1
        size = (predictor.image_size, predictor.image_size)
        for offset in range(1, self.mask_memory_window + 1):
            t = frame + step * offset
            if not 0 <= t < self.n_frames:
                break
            for obj_idx in indices:  # frame-major: SAM 2 caches one frame's features
                outputs = state["output_dict_per_obj"][obj_idx]
                entry = self.results.get(t, state["obj_idx_to_id"][obj_idx])
                if (
                    offset > reach[obj_idx]
                    or entry is None
                    or any(t in held for held in outputs.values())
                ):
                    continue
                mask = torch.from_numpy(entry.mask)[None, None].float().to(state["device"])
                mask = torch.nn.functional.interpolate(
                    mask, size=size, mode="bilinear", align_corners=False, antialias=True
                )
                with torch.inference_mode():  # as SAM 2's public calls run it
                    out, _ = predictor._run_single_frame_inference(
                        inference_state=state,
                        output_dict=outputs,
                        frame_idx=t,
                        batch_size=1,
                        is_init_cond_frame=False,
                        point_inputs=None,
                        mask_inputs=(mask >= 0.5).float(),
                        reverse=reverse,
                        run_mem_encoder=True,
                    )
                outputs["non_cond_frame_outputs"][t] = out

    def _superseding_prompt_behind(
        self, obj_idx: int, frame: int, reverse: bool, including_frame: bool
    ) -> int | None:
        """The nearest frame behind ``frame`` (before it; after it when tracking
        backward), or on it if ``including_frame``, within SAM 2's reach, whose prompt
        found the object; None if none (or prompts do not supersede memory)."""
        if not self.prompts_supersede_memory:
            return None
        step = 1 if reverse else -1
        for offset in range(0 if including_frame else 1, self.memory_window + 1):
            t = frame + step * offset
            if not 0 <= t < self.n_frames:
                return None
            if self._prompt_supersedes_memory(obj_idx, t):
                return t
        return None

    def _prompt_supersedes_memory(self, obj_idx: int, frame: int) -> bool:
        """Whether an object's prompt on a frame supersedes the tracked memory behind it
        (see the module's memory semantics)."""
        return self.prompts_supersede_memory and _finds_its_object(
            self._conditioning_output(obj_idx, frame)
        )

    def _conditioning_output(self, obj_idx: int, frame: int) -> dict | None:
        """An object's prompted-frame output, newest first: SAM 2 keeps a new prompt's
        output apart until a propagation starts."""
        for outputs in (
            self._state["temp_output_dict_per_obj"][obj_idx],
            self._state["output_dict_per_obj"][obj_idx],
        ):
            out = outputs["cond_frame_outputs"].get(frame)
            if out is not None:
                return out
        return None

    def _drop_memory_behind(self, obj_idx: int, frame: int, reverse: bool) -> None:
        non_cond = self._state["output_dict_per_obj"][obj_idx]["non_cond_frame_outputs"]
        for t in [t for t in non_cond if (t > frame if reverse else t < frame)]:
            del non_cond[t]

    def _empty_previous_output_slot(self, frame: int, obj_id: int) -> dict | None:
        """Where SAM 2's add_new_points_or_box looks first for an object's previous
        output on a frame, if SAM 2 holds none there; None if it holds one (or knows
        nothing of the object)."""
        state = self._state
        obj_idx = state["obj_id_to_idx"].get(obj_id)
        if obj_idx is None:
            return None
        outputs = state["output_dict_per_obj"][obj_idx]
        is_cond = (
            frame not in state["frames_tracked_per_obj"][obj_idx]
            or self.model.predictor.add_all_frames_to_correct_as_cond
        )
        slot = state["temp_output_dict_per_obj"][obj_idx][
            "cond_frame_outputs" if is_cond else "non_cond_frame_outputs"
        ]
        held = (
            frame in slot
            or frame in outputs["cond_frame_outputs"]
            or frame in outputs["non_cond_frame_outputs"]
        )
        return None if held else slot

    def clear_prompt(self, frame: int, obj_id: int) -> None:
        """Remove an object's prompt on a frame (and the mask that prompt gave there)."""
        predictor = self.model.predictor
        with self._editing():
            if not self.prompts.remove(frame, obj_id):
                return
            if obj_id in self._state["obj_id_to_idx"]:
                if self.prompts.frames(obj_id):
                    predictor.clear_all_prompts_in_frame(
                        self._state, frame, obj_id, need_output=False
                    )
                else:  # SAM 2 refuses to propagate an object that has no prompt left
                    predictor.remove_object(self._state, obj_id, need_output=False)
            self.results.discard(frame, obj_id)
            self._dirty.add(frame)

    def remove_object(self, obj_id: int) -> list[int]:
        """Forget an object everywhere; returns the frames whose masks changed."""
        with self._editing():
            self.prompts.remove_object(obj_id)
            self.model.predictor.remove_object(self._state, obj_id, need_output=False)
            return self.results.remove_object(obj_id)

    @contextlib.contextmanager
    def _editing(self):
        with self._lock:
            if self._propagating:
                raise SessionBusyError(
                    "prompts cannot change while propagating; stop it or let it finish."
                )
            yield

    def _object_score(self, frame: int, obj_id: int) -> float:
        """SAM 2's object presence probability for an object on a frame."""
        import torch

        idx = self._state["obj_id_to_idx"][obj_id]
        for outputs in (
            self._state["temp_output_dict_per_obj"][idx],
            self._state["output_dict_per_obj"][idx],
        ):
            for key in ("cond_frame_outputs", "non_cond_frame_outputs"):
                out = outputs[key].get(frame)
                if out is not None:
                    return float(torch.sigmoid(out["object_score_logits"].float()).max())
        return float("nan")

    def restore(
        self, prompts: PromptSet, results: TrackResults, pending: Sequence[int] = ()
    ) -> None:
        """Continue a saved session: replay its prompts into SAM 2, keep its masks.

        SAM 2's memory is rebuilt from the prompted frames; the stored masks are taken
        as they are (not recomputed). ``pending`` are frames whose prompts had changed
        without a finished propagation since (see :attr:`pending_frames`).
        """
        if (results.n_frames, results.height, results.width) != (
            self.n_frames,
            self.height,
            self.width,
        ):
            raise PromptError("the stored masks do not fit this video.")
        for (frame, obj_id), prompt in prompts.items():
            self._apply(frame, obj_id, prompt)
        self.results = results
        self._dirty = set(pending)

    # ------------------------------------------------------------- propagation

    @property
    def pending_frames(self) -> list[int]:
        """Frames whose prompts changed since the last finished propagation."""
        return sorted(self._dirty)

    def propagate(
        self, direction: Direction = "forward", start: int | None = None, end: int | None = None
    ) -> Propagation:
        """Track the prompted objects through the video, one frame at a time.

        Yields ``(frame index, {object id: ObjectMask})`` as each frame is done, so a
        caller can show it and stop between frames (:meth:`stop`, or closing the
        iterator); its ``total`` says how many frames a full run yields.
        ``start``/``end`` (inclusive) limit the frames tracked; given explicitly,
        ``start`` is where a forward pass begins and ``end`` where a backward pass
        begins. "both" starts from the first dirty (else prompted) frame in the range
        and goes forward, then backward.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}.")
        if self._propagating:
            raise SessionBusyError("a propagation is already running in this session.")
        low, high = self._frame_range(start, end)
        with self._lock:  # plan after any prompt edit in progress has landed
            if not self.prompts.frames():
                raise PromptError("there is nothing to propagate: add a prompt first.")
            prompted = [f for f in self.prompts.frames() if low <= f <= high]
            dirty = sorted(f for f in self._dirty if low <= f <= high)
        anchors = dirty or prompted
        if direction == "forward":
            first = start if start is not None else (anchors or [low])[0]
            passes = [(first, high - first, False)]
        elif direction == "backward":
            last = end if end is not None else (anchors or [high])[-1]
            passes = [(last, last - low, True)]
        else:
            middle = (anchors or [low])[0]
            passes = [(middle, high - middle, False), (middle, middle - low, True)]
        total = len(set().union(*(_pass_frames(*p) for p in passes)))
        return Propagation(self._run(passes, set(dirty)), total)

    def stop(self) -> None:
        """Ask a running propagation to stop after the frame in progress."""
        self._stop.set()

    def _frame_range(self, start: int | None, end: int | None) -> tuple[int, int]:
        low = 0 if start is None else int(start)
        high = self.n_frames - 1 if end is None else int(end)
        if not 0 <= low <= high < self.n_frames:
            raise PromptError(
                f"frames {low} to {high} are not a range of this video's frames "
                f"0 to {self.n_frames - 1}."
            )
        return low, high

    def _run(self, passes: list[tuple[int, int, bool]], planned_dirty: set[int]):
        with self._lock:
            if self._propagating:
                raise SessionBusyError("a propagation is already running in this session.")
            self._propagating = True
            self._stop.clear()
        finished = False
        try:
            done: set[int] = set()
            for anchor, count, reverse in passes:
                for frame, masks in self._sam2_pass(anchor, count, reverse):
                    if frame not in done:
                        done.add(frame)
                        yield frame, masks
                    if self._stop.is_set():
                        return
            finished = True
        finally:
            if finished:  # prompts changed after planning stay dirty for the next run
                self._dirty -= planned_dirty
            self._propagating = False

    def _sam2_pass(self, anchor: int, count: int, reverse: bool) -> Iterator[FrameResult]:
        predictor = self.model.predictor
        with self.model.autocast():
            self._recall_memory_before(anchor, self.object_ids, reverse, past_frame=True)
        frames = predictor.propagate_in_video(
            self._state, start_frame_idx=anchor, max_frame_num_to_track=count, reverse=reverse
        )
        try:
            while not self._stop.is_set():
                with self.model.autocast():
                    item = next(frames, None)
                if item is None:
                    return
                frame, obj_ids, masks = item
                self._forget_old_memory(frame, reverse)
                yield frame, self._store(frame, obj_ids, masks)
        finally:
            frames.close()

    def _store(self, frame: int, obj_ids: list[int], masks: Any) -> dict[int, ObjectMask]:
        binary = (masks[:, 0] > 0).cpu().numpy()
        out = {}
        for index, obj_id in enumerate(obj_ids):
            entry = ObjectMask.from_mask(binary[index], self._object_score(frame, obj_id))
            self.results.set(frame, obj_id, entry)
            out[obj_id] = entry
        return out

    def _forget_old_memory(self, frame: int, reverse: bool) -> None:
        """Drop tracked-frame outputs SAM 2 will not look at again in this pass.

        SAM 2 keeps every frame's memory features forever, which grows without bound on
        long videos; it only reads the last ``memory_window`` frames (prompted frames are
        kept separately and stay). Past a prompt that found its object, it reads none of
        the frames behind that prompt (the module's memory semantics).
        """
        window_edge = frame + self.memory_window if reverse else frame - self.memory_window
        for obj_idx in self._state["output_dict_per_obj"]:
            supersedes = self._prompt_supersedes_memory(obj_idx, frame)
            self._drop_memory_behind(obj_idx, frame if supersedes else window_edge, reverse)

    def tracking_state_frames(self) -> dict[str, int]:
        """How many frames' outputs SAM 2's state holds (to check memory stays bounded)."""
        outputs = self._state["output_dict_per_obj"].values()
        return {
            "conditioning": sum(len(o["cond_frame_outputs"]) for o in outputs),
            "tracked": sum(len(o["non_cond_frame_outputs"]) for o in outputs),
        }
