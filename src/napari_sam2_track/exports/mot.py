"""MOTChallenge ground truth: ``gt/gt.txt``, ``gt/labels.txt`` and ``seqinfo.ini``
(frames in ``img1/``).

Each line of ``gt.txt`` is ``frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,
visibility``. Frames count from 1. Boxes are the session's own (COCO's convention:
``bb_left``/``bb_top`` are the 0-based column and row of the top-left pixel), as CVAT
and datumaro read and write MOT and as detector training scripts take them;
MOTChallenge's original files count pixels from 1, so a reader that subtracts 1
(motmetrics) sees every box one pixel up and left, which leaves IoU-based scores as
they are. ``conf`` is 1 (MOT's "consider this entry" flag: every exported box is
annotation), ``visibility`` is 1 (the masks do not tell how much of an object is hidden).

Classes are the session's own, not MOTChallenge's pedestrian, car and so on:
``class`` is the 1-based line of the object's class in ``gt/labels.txt`` (one name a
line, as datumaro reads it). TrackEval keeps only MOTChallenge's pedestrians unless it
runs with ``DO_PREPROC`` off, which evaluates every track.

Track ids: the session's object ids are kept when all are positive, so they match the
other exports; otherwise (an object id 0) all ids are renumbered 1..N in id order,
because MOT tools treat ids below 1 as invalid.

``seqinfo.ini`` takes the sequence name from the output folder's name, as MOT folders
are named after their sequence; ``frameRate`` is the video's rate rounded to an integer
(MOT tools parse it as one), or 25 when the session does not know the rate.
"""

from __future__ import annotations

from pathlib import Path

from ..store import Annotation
from ._common import (
    ExportOptions,
    class_index,
    class_names,
    frame_file,
    object_ids,
    visible,
    write_jpeg,
)

IMAGE_FOLDER = "img1"
IMAGE_SUFFIX = ".jpg"
UNKNOWN_FRAME_RATE = 25


def mot_track_ids(ids: list[int]) -> dict[int, int]:
    """Session object id -> MOT track id (see the module docstring)."""
    if all(obj_id >= 1 for obj_id in ids):
        return {obj_id: obj_id for obj_id in ids}
    return {obj_id: index + 1 for index, obj_id in enumerate(sorted(ids))}


def write_mot(annotation: Annotation, target: Path, options: ExportOptions) -> None:
    video = annotation.video
    track_ids = mot_track_ids(object_ids(annotation))
    classes = class_index(annotation)
    (target / "gt").mkdir()
    with open(target / "gt" / "gt.txt", "w", encoding="ascii") as gt:
        for frame in range(video.n_frames):
            for obj_id, entry in visible(annotation.results.frame(frame)):
                left, top, width, height = entry.box
                gt.write(
                    f"{frame + 1},{track_ids[obj_id]},{left},{top},{width},{height},"
                    f"1,{classes[obj_id] + 1},1\n"
                )
            if options.frames is not None:
                name = frame_file(frame + 1, IMAGE_SUFFIX)
                write_jpeg(target / IMAGE_FOLDER / name, options.frames[frame])
            options.progress(frame + 1, video.n_frames)
    labels = "".join(f"{name}\n" for name in class_names(annotation))
    (target / "gt" / "labels.txt").write_text(labels, encoding="utf-8")
    rate = round(video.fps) if video.fps else UNKNOWN_FRAME_RATE
    (target / "seqinfo.ini").write_text(
        "[Sequence]\n"
        f"name={options.name}\n"
        f"imDir={IMAGE_FOLDER}\n"
        f"frameRate={rate}\n"
        f"seqLength={video.n_frames}\n"
        f"imWidth={video.width}\n"
        f"imHeight={video.height}\n"
        f"imExt={IMAGE_SUFFIX}\n",
        encoding="utf-8",
    )
