"""Export a session's annotations in the formats dataset and evaluation tools read.

Every export is all or nothing: it is written under a temporary sibling name and renamed
to the asked-for path only when complete; an existing output there is replaced only
then. Each format's module docstring states its conventions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..store import Annotation, is_session_folder
from ._common import (
    ExportError,
    ExportOptions,
    Progress,
    atomic_output,
    check_replaceable,
    check_writable,
    ignore_progress,
)
from .boxes_csv import write_boxes_csv
from .coco import write_coco
from .cvat import write_cvat
from .davis import write_davis
from .mot import write_mot
from .yolo import write_yolo_detect, write_yolo_segment
from .youtube_vis import write_youtube_vis

__all__ = ["EXPORTERS", "ExportError", "Exporter", "check_target", "export", "get_exporter"]


@dataclass(frozen=True)
class Exporter:
    """One format: its writer, a line for menus and help, and what kind of output it makes.

    ``owned_names`` matches the top-level names the format puts in its folder: an existing
    folder holding anything else is not replaced. ``images`` tells whether the format can
    carry the video's frames as JPEG files; a file format that can is written as a
    dataset folder when it does.
    """

    name: str
    write: Callable[[Annotation, Path, ExportOptions], None]
    description: str
    output: Literal["file", "folder"]
    images: bool = False
    owned_names: str = ""
    suffix: str = ""  # a file output's usual extension

    def writes_folder(self, write_images: bool) -> bool:
        return self.output == "folder" or (self.images and write_images)

    def output_name(self, stem: str, write_images: bool = False) -> str:
        """The usual name of an output for ``stem``: a folder's, or a file's with its
        extension."""
        return stem if self.writes_folder(write_images) else f"{stem}{self.suffix}"


EXPORTERS: dict[str, Exporter] = {
    exporter.name: exporter
    for exporter in (
        Exporter(
            "coco",
            write_coco,
            "COCO instance masks (JSON, RLE), one image per frame; with images, a dataset "
            "folder (annotations/instances_default.json, images/default/)",
            "file",
            images=True,
            owned_names=r"annotations|images",
            suffix=".json",
        ),
        Exporter(
            "youtube_vis",
            write_youtube_vis,
            "YouTube-VIS video instance masks (JSON), one annotation per track",
            "file",
            suffix=".json",
        ),
        Exporter(
            "mot",
            write_mot,
            "MOTChallenge boxes: gt/gt.txt and seqinfo.ini",
            "folder",
            images=True,
            owned_names=r"gt|img1|seqinfo\.ini",
        ),
        Exporter(
            "yolo_detect",
            write_yolo_detect,
            "YOLO detection labels (one txt per frame) and data.yaml",
            "folder",
            images=True,
            owned_names=r"labels|images|data\.yaml",
        ),
        Exporter(
            "yolo_segment",
            write_yolo_segment,
            "YOLO segmentation polygons (one txt per frame) and data.yaml",
            "folder",
            images=True,
            owned_names=r"labels|images|data\.yaml",
        ),
        Exporter(
            "cvat",
            write_cvat,
            "CVAT for video 1.1 XML, one box track per object",
            "file",
            suffix=".xml",
        ),
        Exporter(
            "davis",
            write_davis,
            "DAVIS palette PNGs per frame (Annotations/), binary PNGs per object (Objects/)",
            "folder",
            images=True,
            owned_names=r"Annotations|Objects|JPEGImages",
        ),
        Exporter(
            "boxes_csv",
            write_boxes_csv,
            "boxes as CSV: frame,obj_id,name,class,x0,y0,x1,y1,score",
            "file",
            suffix=".csv",
        ),
    )
}


def export(
    annotation: Annotation,
    format: str,
    out: str | Path,
    progress: Progress | None = None,
    frames_source: Any = None,
    write_images: bool = False,
) -> Path:
    """Write an annotation in a dataset format; the output appears only once complete.

    Parameters
    ----------
    annotation : Annotation
        A session's video, objects, prompts and masks (``store.load_session``).
    format : str
        A name from ``EXPORTERS`` (coco, youtube-vis, mot, yolo, cvat, davis, ...).
    out : str or Path
        The file or folder to write; an earlier export there is replaced.
    progress : callable, optional
        ``progress(done, total)``, called as frames are written.
    frames_source : array-like, optional
        (T, H, W, 3) uint8 frames for ``write_images``; else the session's video.
    write_images : bool
        Also write the frames as JPEG files, for formats that carry images.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    ExportError
        With a one-sentence message, for a request that cannot be carried out.
    """
    check_target(format, out, write_images)
    exporter = EXPORTERS[format]
    out = Path(out)
    folder = exporter.writes_folder(write_images)
    frames = _frames_for_images(annotation, exporter, frames_source) if write_images else None
    name = out.name if exporter.output == "folder" else out.stem
    options = ExportOptions(name or "export", progress or ignore_progress, frames)
    try:
        with atomic_output(out, folder, exporter.owned_names) as target:
            exporter.write(annotation, target, options)
    except OSError as exc:  # a full disk or a folder one may not write to: the user's to fix
        reason = exc.strerror or str(exc)
        raise ExportError(f"{out} could not be written: {reason}.") from exc
    return out


def get_exporter(format: str) -> Exporter:
    """The exporter of a format, or an :class:`ExportError` naming those there are."""
    exporter = EXPORTERS.get(format)
    if exporter is None:
        known = ", ".join(EXPORTERS)
        raise ExportError(f"there is no export format {format!r}; choose one of {known}.")
    return exporter


def check_target(format: str, out: str | Path, write_images: bool = False) -> None:
    """Refuse, in one sentence and before any work, an output that cannot be written or
    would overwrite what it should not: a session folder, or anything inside one."""
    exporter = get_exporter(format)
    out = Path(out).absolute()
    if write_images and not exporter.images:
        carrying = ", ".join(name for name, e in EXPORTERS.items() if e.images)
        raise ExportError(
            f"the {exporter.name} format does not carry frame images (only {carrying} do); "
            "export without asking for images."
        )
    for folder in (out, *out.parents):
        if is_session_folder(folder):
            raise ExportError(
                f"{out} is inside the session folder {folder}; export to a path outside it, "
                "so the session is never overwritten."
            )
    check_replaceable(out, exporter.writes_folder(write_images), exporter.owned_names)
    check_writable(out)


def _frames_for_images(annotation: Annotation, exporter: Exporter, frames_source: Any) -> Any:
    video = annotation.video
    if frames_source is None:
        if video.path is None:
            raise ExportError(
                "frame images cannot be written because this session does not record "
                "where its video is; export without images."
            )
        from ..video import open_video

        frames_source = open_video(video.path)
    shape = tuple(frames_source.shape[:3])
    if shape != (video.n_frames, video.height, video.width):
        raise ExportError(
            f"the frames given have {shape[0]} frames of {shape[2]}x{shape[1]}, but the "
            f"session was made on {video.n_frames} frames of {video.width}x{video.height}."
        )
    return frames_source
