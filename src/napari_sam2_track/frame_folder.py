"""A folder of numbered JPEG/PNG frames as a lazy (T, H, W, 3) uint8 array.

Frames with more than 8 bits (16-bit PNGs) become 8-bit through one intensity range
for the whole folder, sampled from its frames when it is opened, as arrays of the same
data are (:mod:`~napari_sam2_track.intensity`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._ffmpeg import VideoReadError
from .frames import DEFAULT_CACHE_BYTES, LazyFrames
from .intensity import IntensityRange, SourceError, as_uint8_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# PIL modes of 8-bit images that numpy cannot take as they are.
_CONVERT_TO_RGB = {"P", "1", "CMYK", "YCbCr"}
DEFAULT_FOLDER_FPS = 30.0


def _natural_key(path: Path) -> list:
    """Sort key so that frame_2.png comes before frame_10.png."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def list_frame_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=_natural_key)


class ImageFolderFrames(LazyFrames):
    """Frames stored as numbered image files, in natural (numeric) order.

    All frames must share the first frame's size; this is checked on opening from the
    file headers, which costs far less than decoding.
    """

    def __init__(
        self,
        folder: str | Path,
        fps: float = DEFAULT_FOLDER_FPS,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ):
        self.path = Path(folder)
        if not self.path.is_dir():
            raise VideoReadError(f"{self.path} is not a folder of frames.")
        self.files = list_frame_files(self.path)
        if not self.files:
            raise VideoReadError(
                f"{self.path.name} holds no JPEG or PNG frames to open as a video."
            )
        width, height = _image_size(self.files[0])
        for file in self.files[1:]:
            if _image_size(file) != (width, height):
                raise VideoReadError(
                    f"{file.name} is {'x'.join(map(str, _image_size(file)))} but "
                    f"{self.files[0].name} is {width}x{height}; all frames must be one size."
                )
        super().__init__(len(self.files), height, width, cache_bytes)
        self.fps = fps
        self.intensity = _folder_intensity(self.files)

    @property
    def name(self) -> str:
        return self.path.name

    def _load(self, index: int) -> np.ndarray:
        file = self.files[index]
        try:
            frame = as_uint8_rgb(_decode(file, index), self.intensity)
        except SourceError as exc:
            raise VideoReadError(f"frame {index} ({file.name}) could not be read: {exc}") from exc
        if frame.shape != self.shape[1:]:
            raise VideoReadError(
                f"frame {index} ({file.name}) changed size since the folder was opened."
            )
        frame.flags.writeable = False
        self._cache.put(index, frame)
        return frame

    def __repr__(self) -> str:
        t, h, w, _ = self.shape
        return f"ImageFolderFrames({str(self.path)!r}, frames={t}, size={w}x{h})"


def _image_size(file: Path) -> tuple[int, int]:
    try:
        with Image.open(file) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as exc:
        raise VideoReadError(f"{file.name} is not a readable image: {exc}.") from exc


def _decode(file: Path, index: int) -> np.ndarray:
    """The frame's pixel values as stored (8-bit, or 16-bit greyscale)."""
    try:
        with Image.open(file) as image:
            image = image.convert("RGB") if image.mode in _CONVERT_TO_RGB else image
            return np.asarray(image)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise VideoReadError(f"frame {index} ({file.name}) could not be read: {exc}.") from exc


def _folder_intensity(files: list[Path]) -> IntensityRange:
    """8-bit frames keep their values; wider ones share a range sampled from the folder."""
    with Image.open(files[0]) as image:
        wide = image.mode.startswith(("I", "F"))  # I;16, I, F: more than 8 bits a pixel
    if not wide:
        return IntensityRange(0.0, 255.0)
    return IntensityRange.sampled(len(files), lambda i: _decode(files[i], i))
