"""The ffmpeg side of video reading: an exact frame index and seekable decoders.

Frame counts from a container's duration are estimates, and ffmpeg's default output
frame rate duplicates or drops frames of variable-rate videos. So the index is built
by demuxing the video stream without decoding it (``-c copy -f framecrc``), which
lists every packet with its timestamp, and decoders always run with
``-fps_mode passthrough``: decoded frame i is then exactly packet i in display order.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from .errors import UserError


class VideoReadError(UserError):
    """A file that cannot be read as a video; the message is one sentence for the user."""


@dataclass(frozen=True)
class VideoIndex:
    """What decoding a video needs to know, gathered without decoding it.

    ``pts`` holds each frame's presentation time in seconds, in display order, on the
    same clock that ffmpeg's input ``-ss`` uses (relative to the file's start).
    ``keyframes`` holds the display indices of frames a decoder can start from.
    """

    n_frames: int
    height: int
    width: int
    fps: float
    pts: np.ndarray
    keyframes: np.ndarray
    #: A sentence saying the file looks cut short, or None.
    truncation: str | None = None

    def seek_time(self, index: int) -> float | None:
        """The ``-ss`` time whose first decoded frame is ``index`` (None: from the start).

        ffmpeg's accurate seek discards every frame earlier than the requested time;
        aiming halfway between the previous frame and this one is safe from rounding.
        """
        if index <= 0:
            return None
        return float(self.pts[index - 1] + self.pts[index]) / 2.0

    def keyframe_before(self, index: int) -> int:
        """The last keyframe at or before ``index``, where a decode up to it must start."""
        i = np.searchsorted(self.keyframes, index, side="right")
        return int(self.keyframes[i - 1]) if i > 0 else 0

    def keyframe_between(self, after: int, upto: int) -> bool:
        """Whether some keyframe lies in (after, upto]: only then can a seek skip work."""
        i = np.searchsorted(self.keyframes, after, side="right")
        return bool(i < len(self.keyframes) and self.keyframes[i] <= upto)


_TB_RE = re.compile(r"^#tb 0: (\d+)/(\d+)", re.MULTILINE)


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, check=False)


def _last_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def probe_video(path: str | Path) -> VideoIndex:
    """Index a video file: exact frame count, size, fps and per-frame timestamps."""
    path = Path(path)
    if not path.exists():
        raise VideoReadError(f"{path} does not exist; check the path and try again.")
    if path.is_dir():
        raise VideoReadError(f"{path} is a folder, not a video file.")
    if path.stat().st_size == 0:
        raise VideoReadError(f"{path.name} is empty (0 bytes); it holds no video.")

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    proc = _run(
        [
            ffmpeg,
            "-hide_banner",
            "-nostdin",
            "-i",
            str(path),
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-f",
            "framecrc",
            "-",
        ]
    )
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    tb_match = _TB_RE.search(stdout)
    if proc.returncode != 0 and tb_match is None:
        if "matches no streams" in stderr or "does not contain any stream" in stderr:
            raise VideoReadError(f"{path.name} has no video stream.")
        raise VideoReadError(
            f"{path.name} could not be read as a video ({_last_error_line(stderr)})."
        )

    pts, keys = _parse_packets(stdout)
    if len(pts) == 0:
        raise VideoReadError(f"{path.name} contains no video frames.")
    tb = int(tb_match.group(1)) / int(tb_match.group(2))
    order = np.argsort(pts, kind="stable")
    pts_seconds = pts[order].astype(np.float64) * tb
    keyframes = np.flatnonzero(keys[order])

    width, height, fps = _decoded_geometry(path)
    index = VideoIndex(len(pts), height, width, fps, pts_seconds, keyframes)
    if not _looks_cut(len(pts), stderr):
        return index
    index = _without_undecodable_end(path, index)  # a cut-off last packet is no frame
    return dataclasses.replace(index, truncation=_truncation(path.name, index.n_frames, stderr))


_DURATION_RE = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_FPS_RE = re.compile(r"Stream #0:\d+.*?: Video: .*?([\d.]+) fps")
_DAMAGE_MARKERS = ("partial file", "corrupt input packet", "Packet corrupt")
#: Fewer packets than this share of the frames a container announces means it was cut.
_ANNOUNCED_SHARE = 0.9


def announced_frames(stderr: str) -> int | None:
    """The frame count a container's header implies (duration times rate), if given."""
    duration, fps = _DURATION_RE.search(stderr), _FPS_RE.search(stderr)
    if duration is None or fps is None:
        return None
    hours, minutes, seconds = duration.groups()
    total = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return round(total * float(fps.group(1)))


def _looks_cut(found: int, stderr: str) -> bool:
    """Whether ffmpeg saw damage, or found fewer packets than the container announces."""
    announced = announced_frames(stderr)
    short = announced is not None and found < _ANNOUNCED_SHARE * announced
    return short or any(marker in stderr for marker in _DAMAGE_MARKERS)


def _truncation(name: str, found: int, stderr: str) -> str:
    announced = announced_frames(stderr)
    told = f"its header announces {announced} frames but " if announced else ""
    return (
        f"{name} appears to be truncated or damaged: {told}only {found} frames could be "
        "read; the rest of the video is missing."
    )


def _without_undecodable_end(path: Path, index: VideoIndex) -> VideoIndex:
    """The index cut to the frames that decode, found by decoding the last stretch."""
    start = index.keyframe_before(index.n_frames - 1)
    decoder = FrameDecoder(path, index, start)
    try:
        while decoder.position < index.n_frames and decoder.read() is not None:
            pass
    except VideoReadError:
        pass
    finally:
        decoder.close()
    n = decoder.position
    if n == 0:
        raise VideoReadError(f"{path.name} is damaged: none of its frames can be decoded.")
    keyframes = index.keyframes[index.keyframes < n]
    return dataclasses.replace(index, n_frames=n, pts=index.pts[:n], keyframes=keyframes)


def _parse_packets(framecrc: str) -> tuple[np.ndarray, np.ndarray]:
    """Packet timestamps (pts, else dts) and keyframe flags from framecrc output."""
    pts, keys = [], []
    for line in framecrc.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 6 or fields[0] != "0":
            continue
        # framecrc prints "F=0x.." only when the flags differ from "keyframe".
        flags = next((f for f in fields[6:] if f.startswith("F=")), None)
        stamp = fields[2] if fields[2] != "NOPTS" else fields[1]
        if stamp == "NOPTS":
            stamp = str(len(pts))
        pts.append(int(stamp))
        keys.append(flags is None or int(flags[2:], 16) & 1 == 1)
    return np.asarray(pts, dtype=np.int64), np.asarray(keys, dtype=bool)


def _decoded_geometry(path: Path) -> tuple[int, int, float]:
    """Width, height (after rotation) and fps, as the decoder will produce them."""
    reader = imageio_ffmpeg.read_frames(str(path), output_params=["-map", "0:v:0"])
    try:
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as exc:
        raise VideoReadError(f"{path.name} could not be decoded as a video.") from exc
    finally:
        reader.close()
    width, height = meta["size"]
    fps = float(meta.get("fps") or 0.0) or 30.0
    return int(width), int(height), fps


class FrameDecoder:
    """One ffmpeg process decoding RGB frames in order from a start frame."""

    def __init__(self, path: str | Path, index: VideoIndex, start: int = 0):
        self._index = index
        self._frame_bytes = index.height * index.width * 3
        seek = index.seek_time(start)
        input_params = [] if seek is None else ["-ss", f"{seek:.6f}"]
        self._frames = imageio_ffmpeg.read_frames(
            str(path),
            input_params=["-nostdin", *input_params],
            output_params=["-map", "0:v:0", "-fps_mode", "passthrough", "-an", "-sn"],
        )
        next(self._frames)  # metadata
        self.position = start

    def read(self) -> np.ndarray | None:
        """The frame at ``position`` as (H, W, 3) uint8, or None past the last frame."""
        try:
            buffer = next(self._frames)
        except StopIteration:
            return None
        except RuntimeError as exc:
            raise VideoReadError(
                f"frame {self.position} could not be decoded; the file may be truncated."
            ) from exc
        if len(buffer) != self._frame_bytes:
            return None
        self.position += 1
        return np.frombuffer(buffer, dtype=np.uint8).reshape(
            self._index.height, self._index.width, 3
        )

    def close(self) -> None:
        self._frames.close()
