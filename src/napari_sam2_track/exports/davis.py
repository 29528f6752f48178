"""DAVIS-style index PNGs, plus one binary PNG folder per object (as SA-V keeps them).

* ``00000.png`` per frame: an 8-bit palette PNG (PASCAL VOC palette) whose pixel is the
  object's index 1..N in order of object id, 0 for background. Where objects overlap,
  the pixel goes to the higher presence score (ties: higher id), as
  ``TrackResults.labels`` decides.
* ``<object id as 3 digits>/00000.png`` per object and frame: the object's own mask
  (pixel 1 on the object, 0 elsewhere, same palette), so overlaps survive. SA-V's tools
  read these folder names back as integers.

Index PNGs hold at most 255 objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..results import ObjectMask
from ..store import Annotation
from ._common import ExportError, ExportOptions, frame_file, object_ids

MAX_OBJECTS = 255
FRAME_DIGITS = 5


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
    for obj_id in ids:
        (target / object_folder(obj_id)).mkdir()
    empty = np.zeros((video.height, video.width), dtype=np.uint8)
    for frame in range(video.n_frames):
        name = frame_file(frame, ".png", FRAME_DIGITS)
        objects = annotation.results.frame(frame)
        write_index_png(target / name, index_image(objects, index_of, empty.shape))
        for obj_id in ids:
            entry = objects.get(obj_id)
            mask = entry.mask if entry is not None and not entry.empty else empty
            write_index_png(target / object_folder(obj_id) / name, mask)
        options.progress(frame + 1, video.n_frames)
