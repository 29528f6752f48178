"""DAVIS-style index PNGs in DAVIS's folder layout, plus binary PNGs per object.

For a sequence named after the video, under the output folder:

* ``Annotations/<sequence>/00000.png`` per frame: an 8-bit palette PNG (PASCAL VOC
  palette) whose pixel is the object's index 1..N in order of object id, 0 for
  background. Where objects overlap, the pixel goes to the higher presence score (ties:
  higher id), as ``TrackResults.labels`` decides. DAVIS tools (TrackEval, vos-benchmark)
  read ``Annotations`` as their ground-truth folder.
* ``Objects/<sequence>/<object id as 3 digits>/00000.png`` per object and frame: the
  object's own mask (pixel 1 on the object, same palette), so overlaps survive; beside
  the sequence, not inside it, where DAVIS readers would take it for a frame.
* ``JPEGImages/<sequence>/00000.jpg`` per frame, when frame images are asked for.

Index PNGs hold at most 255 objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..results import ObjectMask
from ..store import Annotation
from ._common import (
    ExportError,
    ExportOptions,
    frame_file,
    object_ids,
    video_name,
    write_jpeg,
)

MAX_OBJECTS = 255
FRAME_DIGITS = 5
INDEX_FOLDER, OBJECTS_FOLDER, IMAGES_FOLDER = "Annotations", "Objects", "JPEGImages"


def voc_palette() -> list[int]:
    """The 256-colour PASCAL VOC palette (index 1 dark red, 2 green, ...) as flat RGB."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        bits = index
        for shift in range(7, -1, -1):
            red |= (bits & 1) << shift
            green |= ((bits >> 1) & 1) << shift
            blue |= ((bits >> 2) & 1) << shift
            bits >>= 3
        palette += [red, green, blue]
    return palette


PALETTE = voc_palette()


def write_index_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    png = Image.fromarray(np.asarray(image, dtype=np.uint8))
    png.putpalette(PALETTE)  # turns the 8-bit grey image into a palette image
    png.save(path, optimize=False)


def object_folder(obj_id: int) -> str:
    return f"{obj_id:03d}"


def check_object_count(count: int) -> None:
    if count > MAX_OBJECTS:
        raise ExportError(
            f"the DAVIS format holds at most {MAX_OBJECTS} objects per video and this one "
            f"has {count}; export COCO or YouTube-VIS instead."
        )


def index_image(
    objects: Mapping[int, ObjectMask], index_of: Mapping[int, int], shape: tuple[int, int]
) -> np.ndarray:
    image = np.zeros(shape, dtype=np.uint8)
    # Painted low score first, so the most confident object ends on top.
    for obj_id, entry in sorted(objects.items(), key=lambda item: (item[1].score, item[0])):
        if not entry.empty:
            image[entry.mask] = index_of[obj_id]
    return image


def write_davis(annotation: Annotation, target: Path, options: ExportOptions) -> None:
    video = annotation.video
    ids = object_ids(annotation)
    check_object_count(len(ids))
    index_of = {obj_id: index + 1 for index, obj_id in enumerate(ids)}
    sequence = video_name(annotation, options.name)
    index_folder = target / INDEX_FOLDER / sequence
    index_folder.mkdir(parents=True)
    object_folders = {o: target / OBJECTS_FOLDER / sequence / object_folder(o) for o in ids}
    for folder in object_folders.values():
        folder.mkdir(parents=True)
    empty = np.zeros((video.height, video.width), dtype=np.uint8)
    for frame in range(video.n_frames):
        name = frame_file(frame, ".png", FRAME_DIGITS)
        objects = annotation.results.frame(frame)
        write_index_png(index_folder / name, index_image(objects, index_of, empty.shape))
        for obj_id, folder in object_folders.items():
            entry = objects.get(obj_id)
            mask = entry.mask if entry is not None and not entry.empty else empty
            write_index_png(folder / name, mask)
        if options.frames is not None:
            jpeg = frame_file(frame, ".jpg", FRAME_DIGITS)
            write_jpeg(target / IMAGES_FOLDER / sequence / jpeg, options.frames[frame])
        options.progress(frame + 1, video.n_frames)
