"""What identifies a video: its size and a content fingerprint cheap enough for
multi-gigabyte files, so a session is never applied to the wrong video."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_EDGE_BYTES = 1 << 20


@dataclass(frozen=True)
class VideoRef:
    path: str | None
    n_frames: int
    height: int
    width: int
    fps: float | None
    fingerprint: str

    @classmethod
    def from_source(cls, source: Any, path: str | Path | None = None) -> VideoRef:
        """Describe a lazy video, a frame folder or any (T, H, W[, C]) array."""
        from .model_input import source_geometry

        n_frames, height, width = source_geometry(source)
        path = path or getattr(source, "path", None)
        fps = getattr(source, "fps", None)
        files = getattr(source, "files", None)
        if files is not None:
            fingerprint = _folder_fingerprint(files)
        elif path is not None and Path(path).is_file():
            fingerprint = _file_fingerprint(Path(path))
        else:
            fingerprint = _array_fingerprint(source)
        return cls(
            str(Path(path).resolve()) if path else None,
            n_frames,
            height,
            width,
            float(fps) if fps else None,
            f"{fingerprint}:{n_frames}",
        )

    def mismatch(self, other: VideoRef) -> str | None:
        """Why ``other`` is not this video, as a clause; None if it is."""
        mine = (self.n_frames, self.width, self.height)
        theirs = (other.n_frames, other.width, other.height)
        if mine != theirs:
            return "it has {} frames of {}x{}, the video opened has {} frames of {}x{}".format(
                *mine, *theirs
            )
        if self.fingerprint != other.fingerprint:
            return "the frames differ although the size is the same"
        return None

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "n_frames": self.n_frames,
            "height": self.height,
            "width": self.width,
            "fps": self.fps,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, data: dict) -> VideoRef:
        return cls(
            data.get("path"),
            int(data["n_frames"]),
            int(data["height"]),
            int(data["width"]),
            data.get("fps"),
            str(data["fingerprint"]),
        )


def _file_fingerprint(path: Path) -> str:
    """Size plus the first and last MiB: a few ms even for a file of many GB."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_EDGE_BYTES))
        handle.seek(max(0, size - _EDGE_BYTES))
        digest.update(handle.read(_EDGE_BYTES))
    return "file-sha256-" + digest.hexdigest()[:32]


def _folder_fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{file.stat().st_size};".encode())
    with open(files[0], "rb") as handle:
        digest.update(handle.read(_EDGE_BYTES))
    return "folder-sha256-" + digest.hexdigest()[:32]


def _array_fingerprint(source: Any) -> str:
    digest = hashlib.sha256(f"{tuple(source.shape)}:{np.dtype(source.dtype)}".encode())
    n = int(source.shape[0])
    for index in sorted({0, n // 2, n - 1}):
        digest.update(np.ascontiguousarray(source[index]).tobytes())
    return "frames-sha256-" + digest.hexdigest()[:32]
