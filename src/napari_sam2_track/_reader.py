"""npe2 reader: videos and frame folders open as one lazy RGB image layer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from napari.utils.notifications import show_error, show_warning

from ._ffmpeg import VideoReadError
from .frame_folder import list_frame_files
from .layers import video_layer_kwargs
from .store import is_session_folder
from .video import VIDEO_SUFFIXES, open_video

LayerData = tuple
# napari's contract for "read fine, nothing to add": used after we told the user why.
_NOTHING_OPENED = [(None,)]


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """Claim video files and folders of frames; decline anything else."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if is_session_folder(p):
        return read_session
    if p.is_dir():
        return read_video if list_frame_files(p) else None
    return read_video if p.suffix.lower() in VIDEO_SUFFIXES else None


def video_layer_data(path: str | Path) -> LayerData:
    """The (data, kwargs, "image") tuple of a video, without touching napari."""
    frames = open_video(path)
    for warning in frames.warnings:
        show_warning(warning)
    return frames, video_layer_kwargs(frames.name, frames.fps, str(Path(path).resolve())), "image"


def read_video(path: str | list[str]) -> list[LayerData]:
    """Open one video; on bad input, tell the user in one sentence and add nothing."""
    if isinstance(path, list):
        path = path[0]
    try:
        return [video_layer_data(path)]
    except VideoReadError as exc:
        show_error(f"Could not open {Path(path).name}: {exc}")
        return _NOTHING_OPENED


def read_session(path: str | list[str]) -> list[LayerData]:
    """Open a session folder: its video, prompts, masks and boxes."""
    from .session_io import session_layer_data
    from .store import StoreError

    if isinstance(path, list):
        path = path[0]
    try:
        return session_layer_data(path)
    except (StoreError, VideoReadError) as exc:
        show_error(f"Could not open the session {Path(path).name}: {exc}")
        return _NOTHING_OPENED
