"""Where sessions are saved automatically when the user has not chosen a folder.

One folder per video (by content fingerprint), under the per-user data folder, or
under ``NAPARI_SAM2_TRACK_AUTOSAVE``; so after a crash, opening the same video again
finds what was done.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import platformdirs

from .store import is_session_folder
from .video_ref import VideoRef

AUTOSAVE_ENV = "NAPARI_SAM2_TRACK_AUTOSAVE"


def autosave_root() -> Path:
    override = os.environ.get(AUTOSAVE_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path("napari-sam2-track") / "autosave"


def autosave_folder(video: VideoRef) -> Path:
    stem = Path(video.path).stem if video.path else "video"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{stem}-{video.fingerprint}")[:120]
    return autosave_root() / safe


def rescue_folder(video: VideoRef) -> Path:
    """A new folder for work that could not be saved where it was meant to go."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return autosave_root().parent / "recovered" / f"{autosave_folder(video).name}-{stamp}"


def find_autosave(video: VideoRef) -> Path | None:
    """The autosaved session of this video, if there is one."""
    folder = autosave_folder(video)
    return folder if is_session_folder(folder) else None
