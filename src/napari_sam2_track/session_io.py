"""Sessions in and out of napari: opening a session folder as layers, and finding the
session (chosen or autosaved) that a video layer should continue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari.utils.notifications import show_info

from .autosave import find_autosave
from .label_volume import LabelVolume
from .layers import (
    box_layer_data,
    boxes_layer_kwargs,
    marker_size,
    masks_layer_kwargs,
    prompt_points,
    prompts_layer_kwargs,
    video_layer_kwargs,
)
from .store import Annotation, StoreError, load_session
from .video import open_video
from .video_ref import VideoRef

SESSION_KEY = "sam2_session"


def session_layer_data(folder: str | Path) -> list[tuple]:
    """The video and annotation layers of a session folder, ready for napari."""
    folder = Path(folder)
    annotation = load_session(folder)
    path = annotation.video.path
    if not path or not Path(path).exists():
        raise StoreError(
            f"the video of this session ({path or 'not a file'}) is not there; open the "
            "video, choose it in the SAM 2 Tracker and open this folder there."
        )
    frames = open_video(path)
    problem = annotation.video.mismatch(VideoRef.from_source(frames))
    if problem:
        raise StoreError(f"{Path(path).name} has changed since the session was saved: {problem}.")
    meta = {"sam2_track": str(folder)}
    size = marker_size(annotation.video.height, annotation.video.width)
    video_kwargs = video_layer_kwargs(frames.name, frames.fps, path, **{SESSION_KEY: str(folder)})
    points, point_features = prompt_points(annotation.prompts)
    prompts_kwargs = {**prompts_layer_kwargs(size, point_features), "metadata": meta}
    masks_kwargs = {**masks_layer_kwargs(), "metadata": meta}
    rectangles, box_features = box_layer_data(annotation.results, annotation.objects)
    boxes_kwargs = {**boxes_layer_kwargs(size), "features": box_features, "metadata": meta}
    return [
        (frames, video_kwargs, "image"),
        (points, prompts_kwargs, "points"),
        (LabelVolume(annotation.results), masks_kwargs, "labels"),
        (rectangles, boxes_kwargs, "shapes"),
    ]


def restorable_session(layer: Any) -> tuple[Path | None, Annotation | None]:
    """The session a video layer continues: the folder it was opened from, else its
    autosave; (None, None) for a fresh start."""
    folder = layer.metadata.get(SESSION_KEY)
    video = VideoRef.from_source(layer.data, layer.metadata.get("source_path"))
    if folder:
        return Path(folder), load_session(folder, video)
    autosaved = find_autosave(video)
    if autosaved is None:
        return None, None
    try:
        annotation = load_session(autosaved, video)
    except StoreError:
        return None, None
    show_info(f"Continuing the autosaved session of this video from {autosaved}.")
    return None, annotation
