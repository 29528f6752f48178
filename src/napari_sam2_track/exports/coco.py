"""COCO instance segmentation JSON, one image per video frame.

Images: ``id`` = frame index + 1 (COCO ids start at 1), ``file_name`` = ``000123.jpg``
for frame 123, plus ``frame_index``. Annotations: one per object and frame where the
object has a mask, with compressed-RLE ``segmentation``, ``bbox`` as COCO's
``[x, y, width, height]`` (the session's own box, :mod:`~napari_sam2_track.boxes`),
``area``, SAM 2's
presence ``score``, and the object id as ``track_id`` and as ``attributes.track_id``
(where CVAT's COCO importer looks for it).

With frame images it is a dataset folder in the layout CVAT writes and datumaro reads:
``annotations/instances_default.json`` and ``images/default/000123.jpg``.
"""

from __future__ import annotations

from pathlib import Path

from pycocotools import mask as mask_utils

from ..results import rle_json
from ..store import Annotation
from ._common import (
    ExportOptions,
    class_index,
    class_names,
    frame_file,
    visible,
    write_jpeg,
    write_json,
)

SUBSET = "default"
ANNOTATIONS_FILE = f"annotations/instances_{SUBSET}.json"
IMAGES_FOLDER = f"images/{SUBSET}"


def categories(annotation: Annotation) -> list[dict]:
    return [
        {"id": index + 1, "name": name, "supercategory": ""}
        for index, name in enumerate(class_names(annotation))
    ]


def write_coco(annotation: Annotation, target: Path, options: ExportOptions) -> None:
    video = annotation.video
    classes = class_index(annotation)
    images, annotations = [], []
    for frame in range(video.n_frames):
        images.append(
            {
                "id": frame + 1,
                "file_name": frame_file(frame, ".jpg"),
                "width": video.width,
                "height": video.height,
                "frame_index": frame,
            }
        )
        for obj_id, entry in visible(annotation.results.frame(frame)):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": frame + 1,
                    "category_id": classes[obj_id] + 1,
                    "segmentation": rle_json(entry.rle),
                    "area": int(mask_utils.area(entry.rle)),
                    "bbox": list(entry.box),
                    "iscrowd": 0,
                    "score": round(entry.score, 6),
                    "track_id": obj_id,
                    "attributes": {"track_id": obj_id},
                }
            )
        if options.frames is not None:
            write_jpeg(target / IMAGES_FOLDER / images[-1]["file_name"], options.frames[frame])
        options.progress(frame + 1, video.n_frames)
    if options.frames is not None:
        target = target / ANNOTATIONS_FILE
        target.parent.mkdir(parents=True)
    write_json(
        target,
        {
            "info": {
                "description": f"{options.name}: napari-sam2-track annotations",
                "video": video.path,
                "fps": video.fps,
            },
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories(annotation),
        },
    )
