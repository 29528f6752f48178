"""Image features on disk, so a reopened session or a second run encodes no frame again.

One folder per video, model and input size, named by a digest of them and holding that
key in ``key.json``; a folder whose key is another is never read. Each frame is one
file, written under a temporary name and renamed into place, so a crash leaves no
half-written frame, and the oldest frames go first past a byte budget.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import platformdirs

KEY_FILE = "key.json"
POSITIONS_FILE = "positions.pt"
DEFAULT_DISK_BUDGET = 20 * 2**30


def default_feature_root() -> Path:
    return platformdirs.user_cache_path("napari-sam2-track") / "features"


@dataclass(frozen=True)
class FeatureKey:
    """What image features depend on: the frames, the weights and the input size."""

    video: str  # VideoRef.fingerprint
    model: str
    weights: str  # weights_id of the checkpoint
    image_size: int
    dtype: str

    def folder_name(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def weights_id(checkpoint: Path | None) -> str | None:
    """The checkpoint's path, size and time; None for random weights (never kept)."""
    if checkpoint is None:
        return None
    stat = Path(checkpoint).stat()
    return f"{Path(checkpoint).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


class DiskFeatures:
    """Frames' features for one :class:`FeatureKey` under ``root``."""

    def __init__(self, root: Path, key: FeatureKey, budget_bytes: int = DEFAULT_DISK_BUDGET):
        self.key = key
        self.budget_bytes = budget_bytes
        self.folder = Path(root) / key.folder_name()
        self._lock = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / KEY_FILE
        if key_file.exists():
            try:
                stored = json.loads(key_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                stored = None
            self.usable = stored == asdict(key)
        else:
            _write_atomically(key_file, json.dumps(asdict(key)).encode())
            self.usable = True

    def _frame_file(self, frame: int) -> Path:
        return self.folder / f"{frame:07d}.pt"

    def __contains__(self, frame: int) -> bool:
        return self.usable and self._frame_file(frame).exists()

    def load(self, frame: int, device: Any) -> tuple[list, list] | None:
        """A frame's ``(backbone_fpn, vision_pos_enc)``, or None if not kept or unreadable."""
        import torch

        if frame not in self:
            return None
        try:
            fpn = torch.load(self._frame_file(frame), map_location=device, weights_only=True)
            positions = torch.load(
                self.folder / POSITIONS_FILE, map_location=device, weights_only=True
            )
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
            self._frame_file(frame).unlink(missing_ok=True)  # damaged: encoded and kept anew
            return None
        return fpn, positions

    def save(self, frame: int, fpn: list, positions: list) -> None:
        """Keep a frame's features (and, once, the positional encodings)."""
        if not self.usable or frame in self:
            return
        with self._lock:
            if not (self.folder / POSITIONS_FILE).exists():
                _write_atomically(self.folder / POSITIONS_FILE, _tensor_bytes(positions))
            _write_atomically(self._frame_file(frame), _tensor_bytes(fpn))
            self._evict()

    def _evict(self) -> None:
        files = sorted(self.folder.glob("*.pt"), key=lambda f: f.stat().st_mtime_ns)
        files = [f for f in files if f.name != POSITIONS_FILE]
        total = sum(f.stat().st_size for f in files)
        while files and total > self.budget_bytes:
            oldest = files.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)


def _tensor_bytes(tensors: list) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save([t.detach().cpu() for t in tensors], buffer)
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def disk_features_for(model: Any, frames: Any, where: bool | str | Path) -> DiskFeatures | None:
    """The disk tier for a model's features of ``frames`` (a ``ModelFrames``); None when
    off, for random weights, or where the folder cannot be made (with a warning)."""
    from ..video_ref import VideoRef

    weights = weights_id(model.checkpoint)
    if where is False or where is None or weights is None:
        return None
    root = default_feature_root() if where is True else Path(where)
    dtype = "bfloat16-autocast" if model.device.type == "cuda" else "float32"
    video = VideoRef.from_source(frames.source).fingerprint
    key = FeatureKey(video, model.name, weights, model.image_size, dtype)
    try:
        return DiskFeatures(root, key)
    except OSError as exc:
        warnings.warn(
            f"image features are not kept on disk: {root} cannot be written "
            f"({exc.strerror or exc}); choose another folder.",
            stacklevel=2,
        )
        return None
