"""SAM 2 behind one door: building its predictor, its inference state, its memory.

Nothing outside this package calls a private ``sam2`` function, reads SAM 2's
inference-state dict or patches a ``sam2`` module. The engine sees a
:class:`~.tracker.Sam2Tracker` as a ``tracking_backend.VideoTracker``.
"""

from .build import LoadedModel, ModelSetupError, build_model, check_image_size, resolve_device
from .compat import SAM2_RANGE, check_sam2_version

__all__ = [
    "SAM2_RANGE",
    "LoadedModel",
    "ModelSetupError",
    "build_model",
    "check_image_size",
    "check_sam2_version",
    "resolve_device",
]
