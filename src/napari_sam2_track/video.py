"""Open videos and frame folders as lazy (T, H, W, 3) uint8 arrays."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from ._ffmpeg import FrameDecoder, VideoIndex, VideoReadError, probe_video
from .frames import DEFAULT_CACHE_BYTES, FrameCache, LazyFrames, reads_backward

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
#: Bytes of frames kept behind the one read when reading backward (64 frames at 1080p).
DEFAULT_WINDOW_BYTES = 384 * 2**20

__all__ = ["DEFAULT_WINDOW_BYTES", "VIDEO_SUFFIXES", "VideoFrames", "VideoReadError", "open_video"]


class VideoFrames(LazyFrames):
    """A video file as a lazy array; frame ``i`` equals the i-th frame of a full decode.

    Decoding runs in ffmpeg processes. A read just ahead of a decoder's position reads
    on; a jump seeks (ffmpeg starts from the nearest keyframe). Two decoders are kept so
    that a viewer scrubbing around and a tracker reading in order do not undo each
    other's position. Reading backward fills a window of the frames before the one
    asked for in one decode, so the next steps back need no seek.
    """

    #: Frames decoded ahead into the cache when reading in order.
    read_ahead = 4
    #: Up to this many frames ahead, reading on beats starting a new decoder.
    max_read_on = 48
    #: A miss at most this many frames before a recent request counts as reading backward.
    backward_reach = 8
    #: Frames decoded by a first backward fill; each fill that carries on a run doubles.
    first_fill = 8

    def __init__(
        self,
        path: str | Path,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_decoders: int = 2,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
    ):
        self.path = Path(path)
        self.index: VideoIndex = probe_video(self.path)
        super().__init__(self.index.n_frames, self.index.height, self.index.width, cache_bytes)
        self.fps = self.index.fps
        self._max_decoders = max(1, max_decoders)
        self._decoders: list[FrameDecoder] = []  # most recently used last
        self._window = FrameCache(window_bytes)
        self._last_fill = (0, 0)  # (first frame, size before keyframe alignment)
        #: How many ffmpeg decoders were started (each one a seek or a start from frame 0).
        self.decoder_starts = 0

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def warnings(self) -> list[str]:
        """Sentences on what looks wrong with the file but still reads (a cut-off end)."""
        return [self.index.truncation] if self.index.truncation else []

    @property
    def window_frames(self) -> int:
        """How many frames the backward window holds at most (0 or 1: no window)."""
        return self._window.max_bytes // int(np.prod(self.shape[1:]))

    def _load(self, index: int) -> np.ndarray:
        frame = self._window.get(index)
        if frame is not None:
            return frame
        recent = self.recent_requests()
        if self.window_frames > 1 and reads_backward(index, recent, self.backward_reach):
            return self._fill_window(index)
        return self._read_forward(index)

    def _fill_start(self, index: int) -> int:
        """Where the fill up to ``index`` starts: a short stretch for a lone step back
        (cheap as a seek), doubling while a run goes on, and never before the keyframe
        of ``index`` (earlier frames are decoded from the keyframe before, as the next
        fill does anyway)."""
        start, size = self._last_fill
        carries_on = 0 < start - index <= self.backward_reach
        size = min(self.window_frames, 2 * size if carries_on else self.first_fill)
        self._last_fill = (max(index + 1 - size, self.index.keyframe_before(index)), size)
        return self._last_fill[0]

    def _read_forward(self, index: int) -> np.ndarray:
        decoder = self._decoder_for(index)
        reading_on = decoder.position == index
        while decoder.position < index:  # frames passed on the way are worth caching
            self._store(decoder, decoder.read())
        frame = self._store(decoder, decoder.read())
        if frame is None:
            raise self._undecodable(index)
        if reading_on:
            end = min(index + 1 + self.read_ahead, self.shape[0])
            while decoder.position < end and self._store(decoder, decoder.read()) is not None:
                pass
        return frame

    def _fill_window(self, index: int) -> np.ndarray:
        """Decode the stretch up to ``index`` in one pass into the window."""
        start = self._fill_start(index)
        decoder = self._running_decoder(start)
        own = decoder is None
        if own:  # a decoder of its own: ending at ``index`` it is of no use to the others
            decoder = self._start_decoder(start)
        try:
            while decoder.position <= index:
                position = decoder.position
                frame = decoder.read()
                if frame is None:
                    break
                if position >= start:
                    self._window.put(position, frame)
        finally:
            if own:
                decoder.close()
        frame = self._window.get(index)
        if frame is None:
            raise self._undecodable(index)
        return frame

    def _undecodable(self, index: int) -> VideoReadError:
        return VideoReadError(
            f"frame {index} of {self.path.name} could not be decoded; "
            "the file may be truncated or damaged."
        )

    def _store(self, decoder: FrameDecoder, frame: np.ndarray | None) -> np.ndarray | None:
        if frame is not None:
            self._cache.put(decoder.position - 1, frame)
        return frame

    def _decoder_for(self, index: int) -> FrameDecoder:
        decoder = self._running_decoder(index)
        if decoder is None:
            if len(self._decoders) >= self._max_decoders:
                self._decoders.pop(0).close()
            decoder = self._start_decoder(index)
            self._decoders.append(decoder)
        return decoder

    def _running_decoder(self, index: int) -> FrameDecoder | None:
        """The kept decoder that reaches ``index`` soonest by reading on, if any does."""

        def cost(decoder: FrameDecoder) -> float:
            gap = index - decoder.position
            if gap < 0:
                return np.inf
            if gap <= self.max_read_on or not self.index.keyframe_between(decoder.position, index):
                return gap
            return np.inf

        best = min(self._decoders, key=cost, default=None)
        if best is None or cost(best) == np.inf:
            return None
        self._decoders.remove(best)
        self._decoders.append(best)
        return best

    def _start_decoder(self, start: int) -> FrameDecoder:
        self.decoder_starts += 1
        return FrameDecoder(self.path, self.index, start=start)

    def cache_info(self) -> dict[str, int]:
        with self._lock:
            window = {"window_frames": len(self._window), "window_bytes": self._window.nbytes}
            return {**super().cache_info(), **window}

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


def open_video(
    path: str | Path,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    window_bytes: int = DEFAULT_WINDOW_BYTES,
) -> LazyFrames:
    """Open a video file or a folder of numbered frames as a lazy RGB array.

    Parameters
    ----------
    path : str or Path
        A video file (one of ``VIDEO_SUFFIXES``) or a folder of numbered image files.
    cache_bytes : int
        How many bytes of decoded frames to keep for repeated access.
    window_bytes : int
        How many bytes of frames a video file decodes ahead of need when read backward
        (frame folders read any frame directly and need none).

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
    return VideoFrames(path, cache_bytes=cache_bytes, window_bytes=window_bytes)
