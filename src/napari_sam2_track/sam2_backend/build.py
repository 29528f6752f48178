"""Build SAM 2's video predictor: config, weights, device and numeric precision.

``torch`` and ``sam2`` are imported here only inside functions, so importing the plugin
(and starting napari with it installed) does not pay for them.
"""

from __future__ import annotations

import contextlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..models import DEFAULT_MODEL, get_model
from .compat import check_sam2_version, sam2_calls
from .hole_filling import hole_area

if TYPE_CHECKING:
    import torch

    from ..model_input import ModelFrames
    from ..tracking_backend import StoredMask
    from .tracker import Sam2Tracker

# What sam2.build_sam.build_sam2_video_predictor applies on top of the configs.
_SAM2_POSTPROCESSING = ["++model.binarize_mask_from_pts_for_mem_enc=true"]
# Where the single mask is unstable, take the best of the three candidates instead.
_SAM2_MULTIMASK_FALLBACK = [
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
]


class ModelSetupError(UserError):
    """A model that cannot be built as asked; the message is one sentence for the user."""


@dataclass
class LoadedModel:
    """A SAM 2 video predictor ready to track, with the settings it was built with."""

    predictor: Any  # sam2.sam2_video_predictor.SAM2VideoPredictor
    name: str
    device: torch.device
    image_size: int
    checkpoint: Path | None

    def calls(self) -> contextlib.AbstractContextManager:
        """The context every call into sam2 runs in (see :func:`.compat.sam2_calls`)."""
        return sam2_calls(self.device)

    def start_tracking(
        self, frames: ModelFrames, stored_mask: StoredMask, **options: Any
    ) -> Sam2Tracker:
        """A tracker of ``frames``; ``stored_mask(frame, obj_id)`` gives the kept masks,
        ``options`` are :class:`~.tracker.Sam2Tracker`'s."""
        from .tracker import Sam2Tracker

        return Sam2Tracker(self, frames, stored_mask, **options)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; others must be available."""
    import torch

    name = (device or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", name):
        raise ModelSetupError(f"'{device}' is not a device; use auto, cpu, cuda or mps.")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelSetupError(
                "CUDA was asked for but this PyTorch sees no CUDA GPU; use cpu or auto."
            )
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ModelSetupError(
                f"there is no {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)."
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ModelSetupError("MPS was asked for but is not available here; use cpu or auto.")
    return torch.device(name)


def check_image_size(image_size: int | None) -> None:
    if image_size is not None and (image_size < 64 or image_size % 32):
        raise ModelSetupError(
            f"image size {image_size} must be a multiple of 32 of at least 64 (1024 is SAM 2's)."
        )


def import_sam2() -> None:
    """Import sam2 without leaving Hydra initialised for a host that had not done so.

    ``import sam2`` initialises Hydra's global state when nobody has; a host that
    initialises Hydra itself afterwards would then fail.
    """
    if "sam2.sam2_video_predictor" in sys.modules:
        return
    from hydra.core.global_hydra import GlobalHydra

    was_initialised = GlobalHydra.instance().is_initialized()
    import sam2.sam2_video_predictor  # noqa: F401

    if not was_initialised:
        GlobalHydra.instance().clear()


def compose_sam2_config(
    config_name: str, overrides: list[str], config_dir: str | Path | None = None
):
    """Compose a config packaged with sam2 (or, given ``config_dir``, one in that folder),
    leaving any host Hydra state as it was."""
    from hydra import compose, initialize_config_dir, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    import_sam2()
    backup = get_gh_backup()
    try:
        GlobalHydra.instance().clear()
        if config_dir is not None:
            initialize = initialize_config_dir(str(Path(config_dir).resolve()), version_base="1.2")
        else:
            initialize = initialize_config_module("sam2", version_base="1.2")
        with initialize:
            return compose(config_name=config_name, overrides=overrides)
    finally:
        restore_gh_from_backup(backup)


def instantiate_sam2(model_config: Any) -> Any:
    """The SAM 2 model a composed config's ``model`` node describes.

    sam2 1.1 reads ``no_obj_ptr`` whenever a model predicts object scores but creates it
    only for models that also put object pointers into memory attention; a model with
    spatial memory alone then fails on its first frame. Its pointer is never read then,
    so a zero one stands in (a buffer: nothing to train or load).
    """
    import torch
    from hydra.utils import instantiate

    model = instantiate(model_config, _recursive_=True)
    if model.pred_obj_scores and not hasattr(model, "no_obj_ptr"):
        model.register_buffer("no_obj_ptr", torch.zeros(1, model.hidden_dim), persistent=False)
    return model


def _match_memory_dtype(predictor: Any) -> None:
    """Let SAM 2 mix its bfloat16 memories with float32 features without CUDA autocast.

    SAM 2 stores memory features in bfloat16 and counts on CUDA's autocast to mix them
    with float32 activations. On other devices a memory made only of those features
    (tracking towards a prompt that lies ahead, before any object pointer exists) fails
    with a dtype mismatch, so cast the memory to the features' dtype on the way in.
    """

    def cast_memory(_module, args, kwargs):
        curr = kwargs.get("curr")
        reference = curr[0] if isinstance(curr, list | tuple) else curr
        for key in ("memory", "memory_pos"):
            value = kwargs.get(key)
            if value is not None and reference is not None and value.dtype != reference.dtype:
                kwargs[key] = value.to(reference.dtype)
        return args, kwargs

    predictor.memory_attention.register_forward_pre_hook(cast_memory, with_kwargs=True)


def build_model(
    model: str = DEFAULT_MODEL,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    image_size: int | None = None,
    random_weights: bool = False,
    progress: Any = None,
) -> LoadedModel:
    """Build a SAM 2 video predictor.

    ``checkpoint`` is a local weights file (any file fitting the config of ``model``);
    without one, the model's official checkpoint is taken from the cache, downloading it
    on first use. ``random_weights`` skips weights altogether (tests and benchmarks).
    """
    from omegaconf import OmegaConf

    from ..models import BUNDLED_DIR, ensure_checkpoint, load_checkpoint_weights

    spec = get_model(model)
    check_image_size(image_size)
    check_sam2_version()
    torch_device = resolve_device(device)
    path = None
    if not random_weights:
        path = Path(checkpoint) if checkpoint else ensure_checkpoint(spec, progress=progress)

    overrides = [
        "++model._target_=sam2.sam2_video_predictor.SAM2VideoPredictor",
        # SAM 2's default drops a correction click on an already tracked frame from the
        # conditioning frames, so the next propagation silently overwrites it.
        "++model.add_all_frames_to_correct_as_cond=true",
        *_SAM2_POSTPROCESSING,
        *(_SAM2_MULTIMASK_FALLBACK if spec.multimask else []),
    ]
    if image_size is not None:
        overrides.append(f"++model.image_size={image_size}")
    import_sam2()
    config = compose_sam2_config(spec.config, overrides, BUNDLED_DIR if spec.bundled else None)
    OmegaConf.resolve(config)
    predictor = instantiate_sam2(config.model)
    predictor.fill_hole_area = hole_area(predictor.image_size)
    if path is not None:
        load_checkpoint_weights(predictor, path, spec.name)
    predictor = predictor.to(torch_device).eval()
    if torch_device.type != "cuda":
        _match_memory_dtype(predictor)
    return LoadedModel(predictor, spec.name, torch_device, predictor.image_size, path)
