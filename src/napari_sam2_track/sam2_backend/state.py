"""Reading and pruning SAM 2's inference-state dict (sam2/sam2_video_predictor.py).

An object's outputs sit in ``output_dict_per_obj`` once a propagation has taken them in,
and in ``temp_output_dict_per_obj`` while a new prompt's output waits for one; each holds
``cond_frame_outputs`` (prompted frames) and ``non_cond_frame_outputs`` (tracked frames).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..model_input import ModelFrames

_KINDS = ("cond_frame_outputs", "non_cond_frame_outputs")


def new_inference_state(
    images: ModelFrames, device: Any, offload_state_to_cpu: bool = False
) -> dict:
    """The dict SAM2VideoPredictor.init_state makes, but over frames made on demand.

    A test compares its keys with init_state's, so a change in sam2 shows up.
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


def finds_its_object(out: dict | None) -> bool:
    """Whether a frame's output shows its object: some mask, and a score saying present."""
    return (
        out is not None
        and bool((out["pred_masks"] > 0).any())
        and bool((out["object_score_logits"] > 0).all())
    )


def conditioning_output(state: dict, obj_idx: int, frame: int) -> dict | None:
    """An object's prompted-frame output, newest first: SAM 2 keeps a new prompt's
    output apart until a propagation starts."""
    for outputs in (state["temp_output_dict_per_obj"], state["output_dict_per_obj"]):
        out = outputs[obj_idx]["cond_frame_outputs"].get(frame)
        if out is not None:
            return out
    return None


def drop_memory_behind(state: dict, obj_idx: int, frame: int, reverse: bool) -> None:
    """Forget an object's tracked frames before ``frame`` (after it, if ``reverse``)."""
    non_cond = state["output_dict_per_obj"][obj_idx]["non_cond_frame_outputs"]
    for t in [t for t in non_cond if (t > frame if reverse else t < frame)]:
        del non_cond[t]


def empty_previous_output_slot(
    state: dict, frame: int, obj_id: int, all_corrections_conditioning: bool
) -> dict | None:
    """Where add_new_points_or_box looks first for an object's previous output on a
    frame, if SAM 2 holds none there; None if it holds one (or knows no such object).

    Mirrors add_new_points_or_box: a frame not yet tracked, or any frame when the model
    adds all corrected frames as conditioning frames, keeps its output as conditioning.
    """
    obj_idx = state["obj_id_to_idx"].get(obj_id)
    if obj_idx is None:
        return None
    is_cond = frame not in state["frames_tracked_per_obj"][obj_idx] or all_corrections_conditioning
    slot = state["temp_output_dict_per_obj"][obj_idx][_KINDS[0] if is_cond else _KINDS[1]]
    outputs = state["output_dict_per_obj"][obj_idx]
    held = frame in slot or any(frame in outputs[kind] for kind in _KINDS)
    return None if held else slot


def object_score(state: dict, frame: int, obj_id: int) -> float:
    """SAM 2's probability that an object is on a frame, from its newest output there."""
    import torch

    idx = state["obj_id_to_idx"][obj_id]
    for outputs in (state["temp_output_dict_per_obj"], state["output_dict_per_obj"]):
        for kind in _KINDS:
            out = outputs[idx][kind].get(frame)
            if out is not None:
                return float(torch.sigmoid(out["object_score_logits"].float()).max())
    return float("nan")
