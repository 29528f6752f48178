"""One video's tracking in SAM 2: the inference state and every private call into it.

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .feature_cache import FeatureCache, FeatureView, default_budget
from .feature_store import disk_features_for
from .state import (
    conditioning_output,
    drop_memory_behind,
    empty_previous_output_slot,
    finds_its_object,
    new_inference_state,
    object_score,
)

if TYPE_CHECKING:
    from ..model_input import ModelFrames
    from ..prompts import FramePrompt
    from ..tracking_backend import Prediction, StoredMask
    from .build import LoadedModel


class Sam2Tracker:
    """Prompts, passes and memory of one video in SAM 2's video predictor.

    Parameters
    ----------
    model : LoadedModel
        The predictor and the device it runs on.
    frames : ModelFrames
        The video as SAM 2's input, made on demand.
    stored_mask : callable
        The kept mask of an object on a frame, read to recall memory SAM 2 dropped.
    prompts_supersede_memory : bool
        Whether tracking past a prompt that found its object forgets the tracked
        frames behind it (see the module's memory semantics).
    offload_state_to_cpu : bool
        Keep SAM 2's per-frame outputs in CPU memory (as SAM 2's own option).
    feature_cache_bytes : int, optional
        The byte budget of the image features kept (0: only SAM 2's one frame;
        None: a share of the memory available, see :func:`.feature_cache.default_budget`).
    features_on_disk : bool or path
        Also keep them on disk (True: under the user cache folder), for a reopened
        session or another run on the same video, model and input size.
    """

    def __init__(
        self,
        model: LoadedModel,
        frames: ModelFrames,
        stored_mask: StoredMask,
        prompts_supersede_memory: bool = True,
        offload_state_to_cpu: bool = False,
        feature_cache_bytes: int | None = None,
        features_on_disk: bool | str | Path = False,
    ):
        self.model = model
        self.predictor = model.predictor
        self.n_frames = len(frames)
        self.prompts_supersede_memory = prompts_supersede_memory
        self._stored_mask = stored_mask
        self._calls_lock = threading.RLock()
        self._state = new_inference_state(frames, model.device, offload_state_to_cpu)
        if feature_cache_bytes is None:
            feature_cache_bytes = default_budget(model.device)
        #: Each frame's image features, encoded once (None: SAM 2's one-frame cache).
        self.features = None
        if feature_cache_bytes > 0:
            disk = disk_features_for(model, frames, features_on_disk)
            self.features = FeatureCache(feature_cache_bytes, disk, model.device)
        if self.features is not None:
            self._feature_view = FeatureView(self.features)
            self._state["cached_features"] = self._feature_view
        predictor = self.predictor
        pointer_window = (
            predictor.max_obj_ptrs_in_encoder if predictor.use_obj_ptrs_in_encoder else 0
        )
        stride = predictor.memory_temporal_stride_for_eval
        #: How far back SAM 2 looks: mask memories and (where used) object pointers.
        self.memory_window = max(predictor.num_maskmem * stride, pointer_window)
        #: How many frames before a frame SAM 2 reads the mask memory of.
        self.mask_memory_window = (predictor.num_maskmem - 1) * stride

    @contextlib.contextmanager
    def _sam2_call(self):
        """Run sam2 in its context, one call at a time (a prefetch may run in another
        thread), then keep any frame it encoded in the cache."""
        with self._calls_lock:
            try:
                with self.model.calls():
                    yield
            finally:
                self._keep_new_features()

    def _keep_new_features(self) -> None:
        held = self._state["cached_features"]
        if self.features is None or held is self._feature_view:
            return
        for frame, (image, backbone_out) in held.items():
            self.features.put(frame, image, backbone_out)
        self._state["cached_features"] = self._feature_view

    def encode(self, frame: int) -> None:
        """Compute a frame's image features now, so that a click there waits for none."""
        import torch

        if self.is_encoded(frame):
            return
        with self._sam2_call(), torch.inference_mode():
            self.predictor._get_image_feature(self._state, frame, batch_size=1)

    def is_encoded(self, frame: int) -> bool:
        """Whether a frame's image features are at hand."""
        if self.features is not None:
            return frame in self.features
        return frame in self._state["cached_features"]

    # ------------------------------------------------------------------ prompts

    def preview(self, frame: int, obj_id: int, prompt: FramePrompt) -> Prediction:
        """Give an object's prompt on a frame (replacing any there); its mask there."""
        predictor, state = self.predictor, self._state
        with self._sam2_call():
            reverse = self._tracked_in_reverse(frame, obj_id)
            self._recall_memory_before(frame, [obj_id], reverse, past_frame=False)
            if prompt.mask is not None:
                _, obj_ids, masks = predictor.add_new_mask(state, frame, obj_id, prompt.mask)
            else:
                has_points = len(prompt.points) > 0
                with self._stored_mask_as_previous_logits(frame, obj_id):
                    _, obj_ids, masks = predictor.add_new_points_or_box(
                        state,
                        frame,
                        obj_id,
                        points=prompt.points if has_points else None,
                        labels=prompt.labels if has_points else None,
                        box=prompt.box,
                        clear_old_points=True,
                        normalize_coords=True,
                    )
            mask = (masks[list(obj_ids).index(obj_id), 0] > 0).cpu().numpy()
        return mask, object_score(state, frame, obj_id)

    def clear_prompt(self, frame: int, obj_id: int, last: bool) -> None:
        """Drop an object's prompt on a frame; ``last`` when it has no other prompt."""
        if obj_id not in self._state["obj_id_to_idx"]:
            return
        with self._sam2_call():
            if last:  # SAM 2 refuses to propagate an object that has no prompt left
                self.predictor.remove_object(self._state, obj_id, need_output=False)
            else:
                self.predictor.clear_all_prompts_in_frame(
                    self._state, frame, obj_id, need_output=False
                )

    def remove_object(self, obj_id: int) -> None:
        with self._sam2_call():
            self.predictor.remove_object(self._state, obj_id, need_output=False)

    # ------------------------------------------------------------------- passes

    def track(self, anchor: int, count: int, reverse: bool) -> Iterator[tuple[int, dict]]:
        """One pass of SAM 2 from ``anchor`` over ``count`` more frames.

        Yields ``(frame, {obj_id: (mask, score)})``; closing the iterator ends the pass.
        """
        with self._sam2_call():
            self._recall_memory_before(anchor, self.object_ids, reverse, past_frame=True)
            frames = self.predictor.propagate_in_video(
                self._state, start_frame_idx=anchor, max_frame_num_to_track=count, reverse=reverse
            )
        try:
            while True:
                with self._sam2_call():
                    item = next(frames, None)
                if item is None:
                    return
                frame, obj_ids, masks = item
                self._forget_old_memory(frame, reverse)
                binary = (masks[:, 0] > 0).cpu().numpy()
                yield (
                    frame,
                    {
                        obj_id: (binary[i], object_score(self._state, frame, obj_id))
                        for i, obj_id in enumerate(obj_ids)
                    },
                )
        finally:
            with self._sam2_call():
                frames.close()

    # ------------------------------------------------------------------- memory

    def _recall_memory_before(
        self, frame: int, obj_ids: Sequence[int], reverse: bool, past_frame: bool
    ) -> None:
        """Give SAM 2 back the memory of the frames it reads before ``frame``.

        SAM 2 reads the mask memory of the ``mask_memory_window`` frames before a frame
        (after it, tracking backward) both to take clicks there and to track on from
        there. :meth:`_forget_old_memory` drops that memory once a pass has gone on, and
        a restored session never had it, so a correction would otherwise be read against
        the prompted frames alone, and a click that should trim the mask can empty it.
        Each missing frame's memory is encoded again from its stored mask, as SAM 2
        encodes a mask prompt, reaching back no further than the nearest prompt that
        supersedes it (the one on ``frame`` counts when tracking goes on ``past_frame``).
        """
        state = self._state
        indices = [state["obj_id_to_idx"][o] for o in obj_ids if o in state["obj_id_to_idx"]]
        reach = {}  # per object: how many frames behind ``frame`` it reads
        for obj_idx in indices:
            prompt = self._superseding_prompt_behind(obj_idx, frame, reverse, past_frame)
            if prompt is None:
                reach[obj_idx] = self.mask_memory_window
            else:
                drop_memory_behind(state, obj_idx, prompt, reverse)
                reach[obj_idx] = abs(prompt - frame) - 1
        step = 1 if reverse else -1
        for offset in range(1, self.mask_memory_window + 1):
            t = frame + step * offset
            if not 0 <= t < self.n_frames:
                break
            for obj_idx in indices:  # frame-major: SAM 2 caches one frame's features
                if offset <= reach[obj_idx]:
                    self._recall_frame(obj_idx, t, reverse)

    def _recall_frame(self, obj_idx: int, frame: int, reverse: bool) -> None:
        """Encode an object's memory on a frame again from its stored mask, if missing."""
        import torch

        state = self._state
        outputs = state["output_dict_per_obj"][obj_idx]
        stored = self._stored_mask(frame, state["obj_idx_to_id"][obj_idx])
        if stored is None or any(frame in held for held in outputs.values()):
            return
        size = (self.predictor.image_size, self.predictor.image_size)
        mask = torch.from_numpy(stored)[None, None].float().to(state["device"])
        mask = torch.nn.functional.interpolate(
            mask, size=size, mode="bilinear", align_corners=False, antialias=True
        )
        with torch.inference_mode():  # as SAM 2's public calls run it
            out, _ = self.predictor._run_single_frame_inference(
                inference_state=state,
                output_dict=outputs,
                frame_idx=frame,
                batch_size=1,
                is_init_cond_frame=False,
                point_inputs=None,
                mask_inputs=(mask >= 0.5).float(),
                reverse=reverse,
                run_mem_encoder=True,
            )
        outputs["non_cond_frame_outputs"][frame] = out

    def _superseding_prompt_behind(
        self, obj_idx: int, frame: int, reverse: bool, including_frame: bool
    ) -> int | None:
        """The nearest frame behind ``frame`` (or on it, ``including_frame``) within
        SAM 2's reach whose prompt supersedes the memory behind it; None if none."""
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
        return self.prompts_supersede_memory and finds_its_object(
            conditioning_output(self._state, obj_idx, frame)
        )

    def _forget_old_memory(self, frame: int, reverse: bool) -> None:
        """Drop tracked-frame outputs SAM 2 will not look at again in this pass.

        SAM 2 keeps every frame's memory forever, which grows without bound on long
        videos, but reads only the last ``memory_window`` frames (prompted frames are
        kept apart and stay), and none behind a prompt that supersedes them.
        """
        window_edge = frame + self.memory_window if reverse else frame - self.memory_window
        for obj_idx in self._state["output_dict_per_obj"]:
            supersedes = self._prompt_supersedes_memory(obj_idx, frame)
            drop_memory_behind(self._state, obj_idx, frame if supersedes else window_edge, reverse)

    @contextlib.contextmanager
    def _stored_mask_as_previous_logits(self, frame: int, obj_id: int):
        """Let clicks on a frame refine the mask already stored there.

        SAM 2 feeds an object's previous mask logits on a frame to the mask decoder with
        new clicks, but finds them only in its own outputs, which :meth:`_forget_old_memory`
        drops and a restored session never had; there the stored mask stands in, made into
        logits as SAM 2 makes a mask into logits (+10 inside, -10 outside).
        """
        import torch

        stored = self._stored_mask(frame, obj_id)
        slot = None if stored is None else self._empty_previous_output_slot(frame, obj_id)
        if slot is None:
            yield
            return
        size = self.predictor.image_size // 4  # SAM 2's low-resolution masks
        coverage = torch.nn.functional.interpolate(
            torch.from_numpy(stored)[None, None].float(), size=(size, size), mode="area"
        )
        placeholder = {"pred_masks": coverage * 20.0 - 10.0}
        slot[frame] = placeholder
        try:
            yield
        finally:  # SAM 2 replaced it with the new output, unless the call failed
            if slot.get(frame) is placeholder:
                del slot[frame]

    def _empty_previous_output_slot(self, frame: int, obj_id: int) -> dict | None:
        return empty_previous_output_slot(
            self._state, frame, obj_id, self.predictor.add_all_frames_to_correct_as_cond
        )

    def _tracked_in_reverse(self, frame: int, obj_id: int) -> bool:
        """Whether SAM 2 last tracked the object to this frame backward (so a click there
        reads the memory of the frames after it)."""
        obj_idx = self._state["obj_id_to_idx"].get(obj_id)
        tracked = None if obj_idx is None else self._state["frames_tracked_per_obj"][obj_idx]
        return bool(tracked and tracked.get(frame, {}).get("reverse", False))

    # --------------------------------------------------------------- inspection

    @property
    def object_ids(self) -> list[int]:
        """The objects SAM 2 holds prompts for."""
        return list(self._state["obj_ids"])

    def point_prompt(self, frame: int, obj_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The points (in the model's input pixels, box corners first) and labels SAM 2
        holds for an object on a frame."""
        obj_idx = self._state["obj_id_to_idx"].get(obj_id)
        inputs = None if obj_idx is None else self._state["point_inputs_per_obj"][obj_idx]
        held = None if inputs is None else inputs.get(frame)
        if held is None:
            return None
        return held["point_coords"][0].cpu().numpy(), held["point_labels"][0].cpu().numpy()

    def prompted_frames(self, obj_id: int) -> dict[str, list[int]]:
        """The frames SAM 2 holds point and mask prompts of an object on."""
        obj_idx = self._state["obj_id_to_idx"].get(obj_id)
        if obj_idx is None:
            return {"points": [], "mask": []}
        return {
            "points": sorted(self._state["point_inputs_per_obj"][obj_idx]),
            "mask": sorted(self._state["mask_inputs_per_obj"][obj_idx]),
        }

    def memory_frames(self, obj_id: int | None = None) -> dict[str, list[int]]:
        """The frames whose outputs SAM 2 holds as memory: prompted ("conditioning",
        new prompts included) and tracked; for one object or all."""
        state = self._state
        if obj_id is None:
            indices = list(state["output_dict_per_obj"])
        elif obj_id in state["obj_id_to_idx"]:
            indices = [state["obj_id_to_idx"][obj_id]]
        else:
            indices = []
        held: dict[str, list[int]] = {"conditioning": [], "tracked": []}
        for obj_idx in indices:
            for outputs in (state["output_dict_per_obj"], state["temp_output_dict_per_obj"]):
                held["conditioning"] += outputs[obj_idx]["cond_frame_outputs"]
                held["tracked"] += outputs[obj_idx]["non_cond_frame_outputs"]
        return {kind: sorted(frames) for kind, frames in held.items()}

    def memory_mask(self, obj_id: int, frame: int) -> np.ndarray | None:
        """The low-resolution mask of a tracked frame SAM 2 holds as memory, if any."""
        obj_idx = self._state["obj_id_to_idx"].get(obj_id)
        if obj_idx is None:
            return None
        out = self._state["output_dict_per_obj"][obj_idx]["non_cond_frame_outputs"].get(frame)
        if out is None or out["maskmem_features"] is None:
            return None
        return (out["pred_masks"] > 0)[0, 0].cpu().numpy()
