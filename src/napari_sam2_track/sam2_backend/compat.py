"""The ``sam2`` versions this backend was written for, and the patches its calls need.

sam2 looks up a progress bar and its connected-components kernel as module globals, so
both can only be swapped by assigning them. :func:`sam2_calls` does that for the length
of this backend's calls alone, and puts back what the host had, TF32 flags included.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import threading
import warnings
from typing import TYPE_CHECKING, Any

from .hole_filling import connected_components, has_sam2_extension

if TYPE_CHECKING:
    import torch

#: Versions of sam2 this backend was tested with; pyproject.toml declares the same range.
SAM2_TESTED = (1, 1)
SAM2_RANGE = ">=1.1.0,<1.2"
_warned_versions: set[str] = set()


def sam2_version_problem(version: str) -> str | None:
    """A sentence saying why ``version`` of sam2 is untested here, or None if it was."""
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        major_minor = None
    if major_minor == SAM2_TESTED:
        return None
    return (
        f"sam2 {version} is installed, but napari-sam2-track was tested with sam2"
        f"{SAM2_RANGE}; if tracking fails, install that range with "
        f"pip install 'sam2{SAM2_RANGE}'."
    )


def check_sam2_version() -> None:
    """Warn once per version if the installed sam2 is outside the tested range."""
    try:
        version = importlib.metadata.version("sam2")
    except importlib.metadata.PackageNotFoundError:  # a source checkout on sys.path
        return
    problem = sam2_version_problem(version)
    if problem and version not in _warned_versions:
        _warned_versions.add(version)
        warnings.warn(problem, stacklevel=3)


def _silent_tqdm(iterable, *args, **kwargs):
    return iterable


def _module_patches() -> list[tuple[Any, str, Any]]:
    """(module, attribute, value) for each global that sam2's calls must see here."""
    import sam2.sam2_video_predictor as video_predictor
    import sam2.utils.misc as misc

    # propagate_in_video draws a tqdm bar on stderr; callers show progress their way.
    patches = [(video_predictor, "tqdm", _silent_tqdm)]
    if not has_sam2_extension():  # masks match the GPU's hole filling on every device
        patches.append((misc, "get_connected_components", connected_components))
    return patches


def _tf32_flags(device: torch.device) -> list[tuple[Any, str, Any]]:
    """TF32 matmuls on Ampere and newer, as SAM 2's own notebooks enable."""
    import torch

    if device.type != "cuda" or torch.cuda.get_device_properties(device).major < 8:
        return []
    return [
        (torch.backends.cuda.matmul, "allow_tf32", True),
        (torch.backends.cudnn, "allow_tf32", True),
    ]


class _ScopedAttributes:
    """Attributes set while any thread is inside a call, restored when the last leaves."""

    def __init__(self):
        self._lock = threading.Lock()
        self._depth: dict[tuple[int, str], int] = {}
        self._saved: dict[tuple[int, str], tuple[Any, Any]] = {}

    def enter(self, patches: list[tuple[Any, str, Any]]) -> None:
        with self._lock:
            for owner, name, value in patches:
                key = (id(owner), name)
                if not self._depth.get(key):
                    self._saved[key] = (owner, getattr(owner, name))
                    setattr(owner, name, value)
                self._depth[key] = self._depth.get(key, 0) + 1

    def leave(self, patches: list[tuple[Any, str, Any]]) -> None:
        with self._lock:
            for owner, name, _ in patches:
                key = (id(owner), name)
                self._depth[key] -= 1
                if not self._depth[key]:
                    saved_owner, original = self._saved.pop(key)
                    setattr(saved_owner, name, original)


_scoped = _ScopedAttributes()


@contextlib.contextmanager
def sam2_calls(device: torch.device):
    """Run sam2 with its patches, TF32 and autocast, leaving the host's state after."""
    patches = _module_patches() + _tf32_flags(device)
    _scoped.enter(patches)
    try:
        with autocast_for(device):
            yield
    finally:
        _scoped.leave(patches)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA, as SAM 2 is meant to run; full precision elsewhere."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
