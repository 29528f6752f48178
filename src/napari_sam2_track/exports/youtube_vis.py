"""YouTube-VIS JSON: one video, one annotation per object track.

``segmentations``, ``bboxes`` and ``areas`` hold one entry per video frame and ``null``
where the object has no mask (absent, or never tracked there). Masks are uncompressed
RLE (``counts`` a list of run lengths), as YouTube-VIS's own files hold them and as
its readers (TrackEval's among them) expect; ``bboxes`` are COCO's
``[x, y, width, height]`` (the session's own boxes). ``file_names`` are
``<video name>/000123.jpg``. An annotation is a track: its ``id`` is the object id, as
in every other export (and ``track_id`` too).
"""

from __future__ import annotations

from pathlib import Path

from pycocotools import mask as mask_utils

from ..results import rle_counts_json
from ..store import Annotation
from ._common import (
    ExportOptions,
    class_index,
    frame_file,
    object_ids,
    video_name,
    write_json,
)
from .coco import categories


def write_youtube_vis(annotation: Annotation, target: Path, options: ExportOptions) -> None:
    video = annotation.video
    n = video.n_frames
    tracks: dict[int, dict[str, list]] = {}
    for frame in range(n):
        for obj_id, entry in annotation.results.frame(frame).items():
            if entry.empty:
                continue
            track = tracks.setdefault(obj_id, {k: [None] * n for k in ("seg", "box", "area")})
            track["seg"][frame] = rle_counts_json(entry.mask)
            track["box"][frame] = list(entry.box)
            track["area"][frame] = int(mask_utils.area(entry.rle))
        options.progress(frame + 1, n)
    classes = class_index(annotation)
    annotations = []
    for obj_id in (o for o in object_ids(annotation) if o in tracks):
        annotations.append(
            {
                "id": obj_id,
                "video_id": 1,
                "track_id": obj_id,
                "category_id": classes[obj_id] + 1,
                "iscrowd": 0,
                "width": video.width,
                "height": video.height,
                "length": 1,
                "segmentations": tracks[obj_id]["seg"],
                "bboxes": tracks[obj_id]["box"],
                "areas": tracks[obj_id]["area"],
            }
        )
    name = video_name(annotation, options.name)
    write_json(
        target,
        {
            "info": {"description": f"{name}: napari-sam2-track annotations"},
            "licenses": [],
            "videos": [
                {
                    "id": 1,
                    "width": video.width,
                    "height": video.height,
                    "length": n,
                    "file_names": [f"{name}/{frame_file(f, '.jpg')}" for f in range(n)],
                }
            ],
            "categories": categories(annotation),
            "annotations": annotations,
        },
    )
