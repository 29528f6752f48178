"""What every format writer shares: all-or-nothing output, class tables, file names."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..paths import why_unwritable
from ..results import ObjectMask
from ..store import Annotation

Progress = Callable[[int, int], None]
JPEG_QUALITY = 95


class ExportError(UserError):
    """An export that cannot be made as asked; the message is one sentence for the user."""


def ignore_progress(done: int, total: int) -> None:
    pass


@dataclass(frozen=True)
class ExportOptions:
    """What a format writer needs besides the annotation and the folder or file to fill.

    ``name`` is the output's final name without its suffix (MOT's sequence name);
    ``frames`` is the (T, H, W, 3) video when frame images are to be written, else None.
    """

    name: str
    progress: Progress = ignore_progress
    frames: Any = None


# ------------------------------------------------------------------ all-or-nothing output


@contextlib.contextmanager
def atomic_output(out: Path, folder: bool, owned_names: str = "") -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` to write; it becomes ``out`` only when complete.

    An existing ``out`` is replaced only after the new output is complete. An existing
    folder is replaced only when it is empty or holds nothing but top-level names that
    match ``owned_names`` (what this format writes), so that a mistyped path cannot wipe
    someone's folder.
    """
    out = Path(out)
    check_replaceable(out, folder, owned_names)
    out.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    partial = out.with_name(f"{out.name}.partial-{token}")
    if folder:
        partial.mkdir()
    try:
        yield partial
        if folder:
            _swap_in_folder(partial, out, out.with_name(f"{out.name}.old-{token}"))
        else:
            os.replace(partial, out)  # one atomic step for a file, even over an old one
    except BaseException:  # Ctrl-C too: nothing half-written may stay behind
        _remove(partial)
        raise


def check_writable(out: Path) -> None:
    """Refuse an output that cannot be made or written, or whose name is too long."""
    problem = why_unwritable(out, name_room=len(".partial-00000000"))
    if problem:
        raise ExportError(f"{problem}.")


def check_replaceable(out: Path, folder: bool, owned_names: str) -> None:
    if folder and out.exists() and not out.is_dir():
        raise ExportError(f"{out} is an existing file, but this format writes a folder.")
    if not folder and out.is_dir():
        raise ExportError(f"{out} is an existing folder, but this format writes one file.")
    if folder and out.is_dir():
        foreign = [p.name for p in out.iterdir() if not re.fullmatch(owned_names, p.name)]
        if foreign:
            raise ExportError(
                f"{out} already holds files this export did not write ({foreign[0]}, ...); "
                "choose another output path or empty that folder."
            )


def _swap_in_folder(partial: Path, out: Path, old: Path) -> None:
    if not out.exists():
        os.rename(partial, out)
        return
    os.rename(out, old)
    try:
        os.rename(partial, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------------ what to write


def object_ids(annotation: Annotation) -> list[int]:
    """Every object the session knows, tracked or only named, in id order."""
    return sorted(set(annotation.results.object_ids()) | set(annotation.objects))


def class_names(annotation: Annotation) -> list[str]:
    """Distinct classes in order of the first object of each; list index = class index."""
    names: list[str] = []
    for obj_id in object_ids(annotation):
        name = annotation.class_name(obj_id)
        if name not in names:
            names.append(name)
    return names


def class_index(annotation: Annotation) -> dict[int, int]:
    """0-based class index of every object (formats that count from 1 add 1)."""
    names = class_names(annotation)
    return {
        obj_id: names.index(annotation.class_name(obj_id)) for obj_id in object_ids(annotation)
    }


def visible(objects: dict[int, ObjectMask]) -> list[tuple[int, ObjectMask]]:
    """The objects of one frame that have a mask there, in id order."""
    return [(obj_id, entry) for obj_id, entry in sorted(objects.items()) if not entry.empty]


def video_name(annotation: Annotation, fallback: str) -> str:
    path = annotation.video.path
    return Path(path).stem if path else fallback


def frame_file(frame: int, suffix: str, digits: int = 6) -> str:
    return f"{frame:0{digits}d}{suffix}"


def write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, separators=(",", ":"))


def write_jpeg(path: Path, frame: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(frame, dtype=np.uint8)).save(path, quality=JPEG_QUALITY)
