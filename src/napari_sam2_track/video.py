"""Open videos and frame folders as lazy (T, H, W, 3) uint8 arrays."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ._ffmpeg import FrameDecoder, VideoIndex, VideoReadError, probe_video
from .frames import DEFAULT_CACHE_BYTES, LazyFrames

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")

__all__ = ["VIDEO_SUFFIXES", "VideoFrames", "VideoReadError", "open_video"]


class VideoFrames(LazyFrames):
    """A video file as a lazy array; frame ``i`` equals the i-th frame of a full decode.

    Decoding runs in ffmpeg processes. A read just ahead of a decoder's position reads
    on; a jump seeks (ffmpeg starts from the nearest keyframe). Two decoders are kept so
    that a viewer scrubbing around and a tracker reading in order do not undo each
    other's position.
    """

    #: Frames decoded ahead into the cache when reading in order.
    read_ahead = 4
    #: Up to this many frames ahead, reading on beats starting a new decoder.
    max_read_on = 48

    def __init__(
        self,
        path: str | Path,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_decoders: int = 2,
    ):
        self.path = Path(path)
        self.index: VideoIndex = probe_video(self.path)
        super().__init__(self.index.n_frames, self.index.height, self.index.width, cache_bytes)
        self.fps = self.index.fps
        self._max_decoders = max(1, max_decoders)
        self._decoders: list[FrameDecoder] = []  # most recently used last

    @property
    def name(self) -> str:
        return self.path.stem

    def _load(self, index: int) -> np.ndarray:
        decoder = self._decoder_for(index)
        reading_on = decoder.position == index
        while decoder.position < index:  # frames passed on the way are worth caching
            self._store(decoder, decoder.read())
        frame = self._store(decoder, decoder.read())
        if frame is None:
            raise VideoReadError(
                f"frame {index} of {self.path.name} could not be decoded; "
                "the file may be truncated or damaged."
            )
        if reading_on:
            end = min(index + 1 + self.read_ahead, self.shape[0])
            while decoder.position < end and self._store(decoder, decoder.read()) is not None:
                pass
        return frame

    def _store(self, decoder: FrameDecoder, frame: np.ndarray | None) -> np.ndarray | None:
        if frame is not None:
            self._cache.put(decoder.position - 1, frame)
        return frame

    def _decoder_for(self, index: int) -> FrameDecoder:
        def cost(decoder: FrameDecoder) -> float:
            gap = index - decoder.position
            if gap < 0:
                return np.inf
            if gap <= self.max_read_on or not self.index.keyframe_between(decoder.position, index):
                return gap
            return np.inf

        best = min(self._decoders, key=cost, default=None)
        if best is not None and cost(best) < np.inf:
            self._decoders.remove(best)
        else:
            if len(self._decoders) >= self._max_decoders:
                self._decoders.pop(0).close()
            best = FrameDecoder(self.path, self.index, start=index)
        self._decoders.append(best)
        return best

    def close(self) -> None:
        """Stop the decoder processes; frames can still be read (decoders restart)."""
        with self._lock:
            for decoder in self._decoders:
                decoder.close()
            self._decoders.clear()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        t, h, w, _ = self.shape
        return f"VideoFrames({str(self.path)!r}, frames={t}, size={w}x{h}, fps={self.fps:g})"


def open_video(path: str | Path, cache_bytes: int = DEFAULT_CACHE_BYTES) -> LazyFrames:
    """Open a video file or a folder of numbered frames as a lazy RGB array.

    Parameters
    ----------
    path : str or Path
        A video file (one of ``VIDEO_SUFFIXES``) or a folder of numbered image files.
    cache_bytes : int
        How many bytes of decoded frames to keep for repeated access.

    Returns
    -------
    LazyFrames
        A (T, H, W, 3) uint8 array-like that decodes frames only when asked for them.

    Raises
    ------
    VideoReadError
        With a one-sentence message, when the path cannot be read as a video.
    """
    from .frame_folder import ImageFolderFrames

    path = Path(path)
    if path.is_dir():
        return ImageFolderFrames(path, cache_bytes=cache_bytes)
    if not path.exists():
        raise VideoReadError(f"{path} does not exist; check the path and try again.")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        known = ", ".join(VIDEO_SUFFIXES)
        raise VideoReadError(f"{path.name} is not a video file this plugin opens ({known}).")
    return VideoFrames(path, cache_bytes=cache_bytes)
