"""Sessions in and out of napari: opening a session folder as layers, and finding the
session (chosen or autosaved) that a video layer should continue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.utils.notifications import show_info

from .autosave import find_autosave
from .label_volume import LabelVolume
from .layers import box_layer_data
from .store import Annotation, StoreError, load_session
from .video import open_video
from .video_ref import VideoRef

SESSION_KEY = "sam2_session"


def session_layer_data(folder: str | Path) -> list[tuple]:
    """The video and annotation layers of a session folder, ready for napari."""
    from .controller import BOXES_LAYER, MASKS_LAYER, PROMPTS_LAYER

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
    video_meta = {"fps": frames.fps, "source_path": path, SESSION_KEY: str(folder)}
    video_kwargs = {"name": frames.name, "rgb": True, "contrast_limits": [0, 255]}
    video = (frames, {**video_kwargs, "metadata": video_meta}, "image")
    points, labels, obj_ids = [], [], []
    for (frame, obj_id), prompt in annotation.prompts.items():
        for (x, y), label in zip(prompt.points, prompt.labels, strict=True):
            points.append((frame, y, x))
            labels.append(int(label))
            obj_ids.append(obj_id)
    prompt_features = {"label": labels, "obj_id": obj_ids}
    prompts_kwargs = {"name": PROMPTS_LAYER, "ndim": 3, "features": prompt_features}
    prompts = (
        np.array(points, float).reshape(-1, 3),
        {**prompts_kwargs, "metadata": meta},
        "points",
    )
    masks_kwargs = {"name": MASKS_LAYER, "opacity": 0.5, "metadata": meta}
    masks = (LabelVolume(annotation.results), masks_kwargs, "labels")
    names = {o: annotation.object_info(o).name for o in annotation.objects}
    rectangles, box_features = box_layer_data(annotation.results, names)
    boxes_kwargs = {
        "name": BOXES_LAYER,
        "ndim": 3,
        "shape_type": "rectangle",
        "face_color": "transparent",
        "edge_color": "yellow",
    }
    boxes = (rectangles, {**boxes_kwargs, "features": box_features, "metadata": meta}, "shapes")
    return [video, prompts, masks, boxes]


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
