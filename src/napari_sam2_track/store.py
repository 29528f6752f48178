"""The annotation store: a session folder that survives crashes.

Layout::

    SESSION/
      session.json          manifest: format version, video, model, objects, and the
                            name of the data folder that belongs to it
      data-<id>/prompts.json
      data-<id>/masks/<first frame>.json.gz   masks of CHUNK_FRAMES frames (COCO RLE)
      data-<id>/boxes.csv   the boxes derived from the masks (see box_csv)

Saving writes a complete new data folder, then replaces ``session.json`` in one atomic
rename; only then is the old data folder removed. Interrupted at any step, the folder
still holds the previous manifest and the data it names. One writer at a time holds the
folder (:mod:`.session_lock`), and a save refuses to replace a version it has not seen.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .box_csv import annotation_rows, write_box_csv
from .errors import UserError
from .paths import why_unwritable
from .prompts import FramePrompt, PromptSet
from .results import (
    ObjectMask,
    TrackResults,
    decode_mask,
    encode_mask,
    rle_from_json,
    rle_json,
)
from .session_lock import LOCK_FILE, SAVE_WAIT_S, session_lock
from .video_ref import VideoRef

FORMAT_VERSION = 1
MANIFEST = "session.json"
DATA_PREFIX = "data-"  # the data folder's name is this and a random id
PROMPTS_FILE, MASKS_FOLDER, BOXES_FILE = "prompts.json", "masks", "boxes.csv"
#: Present while a folder's first save is under way: data there without a manifest is
#: then an interrupted first save, nobody's work, not a session that lost its manifest.
FIRST_SAVE_MARK = ".first-save.partial"
CHUNK_FRAMES = 100
DEFAULT_CLASS = "object"  # the class of an object that was given none


class StoreError(UserError):
    """A session folder that cannot be loaded; the message is one sentence for the user."""


class SessionChangedError(StoreError):
    """The folder holds a version of the session this writer has not seen."""


#: ``save_session(expected_version=ANY_VERSION)`` replaces whatever the folder holds.
ANY_VERSION = "*"


@dataclass
class ObjectInfo:
    id: int
    name: str = ""
    category: str = ""

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.name, "class": self.category}

    @classmethod
    def from_json(cls, data: dict) -> ObjectInfo:
        return cls(_whole(data["id"]), str(data.get("name", "")), str(data.get("class", "")))


@dataclass
class Annotation:
    """Everything a session folder holds. ``warnings`` lists what could not be loaded."""

    video: VideoRef
    prompts: PromptSet
    results: TrackResults
    #: Names and classes by object id, as saved; objects with prompts or masks but no
    #: entry here are saved as "object <id>".
    objects: dict[int, ObjectInfo] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    pending_frames: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: The session folder it was loaded from or last saved to, and the version there
    #: (the name of its data folder).
    folder: Path | None = None
    version: str | None = None

    def object_info(self, obj_id: int) -> ObjectInfo:
        return self.objects.get(obj_id) or ObjectInfo(obj_id, f"object {obj_id}")

    def class_name(self, obj_id: int) -> str:
        """The object's class, ``DEFAULT_CLASS`` when it has none."""
        return self.object_info(obj_id).category or DEFAULT_CLASS


# ------------------------------------------------------------------------------ saving


def save_session(
    folder: str | Path,
    annotation: Annotation,
    expected_version: str | None = ANY_VERSION,
    wait: float = SAVE_WAIT_S,
) -> Path:
    """Write the annotation into ``folder`` atomically; returns the manifest's path.

    ``expected_version`` is the version the writer last saw there (None: the folder must
    hold no session yet); another one there raises :class:`SessionChangedError`. Another
    writer holding the folder for more than ``wait`` seconds raises
    :class:`~.session_lock.SessionLockedError`. The new version is recorded in
    ``annotation.folder`` and ``annotation.version``.
    """
    folder = Path(folder)
    check_session_target(folder)
    with session_lock(folder, wait=wait):
        current = session_version(folder)
        if expected_version != ANY_VERSION and current != expected_version:
            raise SessionChangedError(_changed_sentence(folder, expected_version))
        data_name = _save_locked(folder, annotation)
    annotation.folder, annotation.version = folder, data_name
    return folder / MANIFEST


def _changed_sentence(folder: Path, expected: str | None) -> str:
    if expected is None:
        return (
            f"{folder} already holds a session; open it to continue it, or save to another folder."
        )
    return (
        f"{folder} was saved by another program since this session was opened or saved "
        "there; save to another folder, or open it again to continue from its version."
    )


def session_version(folder: str | Path) -> str | None:
    """The version a session folder holds (its data folder's name), None if none."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
        return str(manifest["data"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise StoreError(f"{Path(folder) / MANIFEST} is damaged and cannot be read.") from None


def check_session_target(folder: str | Path) -> None:
    """Refuse, in one sentence, a path a session cannot be written to without harm.

    Checked before any long work: a file, a folder of other things, a folder that holds
    session data but no manifest, and a place that cannot be written.
    """
    folder = Path(folder)
    problem = why_unwritable(folder)
    if problem:
        raise StoreError(f"{problem}.")
    if folder.exists() and not folder.is_dir():
        raise StoreError(f"{folder} is a file; a session is a folder: choose another path.")
    if folder.is_dir() and not is_session_folder(folder):
        # What an interrupted save leaves (a lock, partial files) is not anyone's work.
        names = sorted(
            p.name for p in folder.iterdir() if p.name != LOCK_FILE and p.suffix != ".partial"
        )
        first_save_cut_short = (folder / FIRST_SAVE_MARK).exists()
        if not first_save_cut_short and any(name.startswith(DATA_PREFIX) for name in names):
            raise StoreError(
                f"{folder} holds session data but no {MANIFEST}; it may be a damaged "
                f"session: restore its {MANIFEST}, or choose another folder."
            )
        others = [name for name in names if not name.startswith(DATA_PREFIX)]
        if others:
            raise StoreError(
                f"{folder} is not a session folder and is not empty ({others[0]}, ...); "
                "choose a new or empty folder."
            )


def _save_locked(folder: Path, annotation: Annotation) -> str:
    data_name = f"{DATA_PREFIX}{uuid.uuid4().hex[:12]}"
    partial, manifest_partial = folder / f"{data_name}.partial", folder / f"{MANIFEST}.partial"
    marker = folder / FIRST_SAVE_MARK
    try:
        if not (folder / MANIFEST).exists():
            _write(marker, b"")
        files = _write_data(partial, annotation)
        os.rename(partial, folder / data_name)
        manifest = {
            "format_version": FORMAT_VERSION,
            "video": annotation.video.to_json(),
            "model": annotation.model,
            "objects": [annotation.object_info(o).to_json() for o in _all_object_ids(annotation)],
            # Frames whose prompts changed since the last finished propagation.
            "pending_frames": sorted(int(f) for f in annotation.pending_frames),
            "data": data_name,
            "files": files,
        }
        _write(manifest_partial, json.dumps(manifest, indent=1).encode())
        os.replace(manifest_partial, folder / MANIFEST)
    except BaseException:  # a full disk, say: the previous version stays, whole and alone
        for path in (partial, folder / data_name):
            shutil.rmtree(path, ignore_errors=True)
        manifest_partial.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    marker.unlink(missing_ok=True)
    _remove_stale(folder, keep=data_name)
    return data_name


def _write_data(partial: Path, annotation: Annotation) -> dict[str, int]:
    """Write the data folder's files; their sizes by name, for the manifest."""
    partial.mkdir()
    files = {PROMPTS_FILE: _write(partial / PROMPTS_FILE, _prompts_json(annotation.prompts))}
    for first, payload in _mask_chunks(annotation.results):
        name = f"{MASKS_FOLDER}/{first:08d}.json.gz"
        files[name] = _write(partial / name, gzip.compress(payload, mtime=0))
    files[BOXES_FILE] = _write(partial / BOXES_FILE, _boxes_csv(annotation))
    _fsync_dir(partial)
    return files


def _write(path: Path, payload: bytes | str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = payload.encode() if isinstance(payload, str) else payload
    with open(path, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    return len(payload)


def _fsync_dir(folder: Path) -> None:
    if hasattr(os, "O_DIRECTORY"):  # POSIX: make the renames themselves durable
        fd = os.open(folder, os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_stale(folder: Path, keep: str) -> None:
    for path in folder.iterdir():
        stale_data = path.name.startswith(DATA_PREFIX) and path.name != keep
        if stale_data and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _all_object_ids(annotation: Annotation) -> list[int]:
    ids = set(annotation.objects) | set(annotation.prompts.object_ids())
    return sorted(ids | set(annotation.results.object_ids()))


def _prompts_json(prompts: PromptSet) -> str:
    rows = []
    for (frame, obj_id), prompt in prompts.items():
        rows.append(
            {
                "frame": frame,
                "obj_id": obj_id,
                "points": prompt.points.tolist(),
                "labels": prompt.labels.tolist(),
                "box": list(prompt.box) if prompt.box is not None else None,
                "mask": rle_json(encode_mask(prompt.mask)) if prompt.mask is not None else None,
            }
        )
    return json.dumps({"prompts": rows})


def _mask_chunks(results: TrackResults):
    chunks: dict[int, dict[str, dict]] = {}
    for frame, objects in results:
        entries = {str(obj_id): _entry_json(e) for obj_id, e in objects.items()}
        chunks.setdefault(frame // CHUNK_FRAMES * CHUNK_FRAMES, {})[str(frame)] = entries
    for first in sorted(chunks):
        yield first, json.dumps(chunks[first]).encode()


def _entry_json(entry: ObjectMask) -> dict:
    data = {"rle": rle_json(entry.rle), "score": entry.score, "box": entry.box, "area": entry.area}
    if entry.painted:  # absent: given by SAM 2, as in sessions saved before painting was
        data["painted"] = True
    return data


def _boxes_csv(annotation: Annotation) -> str:
    out = io.StringIO()
    write_box_csv(out, annotation_rows(annotation))
    return out.getvalue()


# ----------------------------------------------------------------------------- loading


def is_session_folder(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def load_session(folder: str | Path, video: VideoRef | None = None) -> Annotation:
    """Load a session folder; masks are read per chunk when first needed.

    With ``video``, refuses a folder made for another video. A damaged prompts file or
    mask chunk is skipped with a sentence in ``Annotation.warnings`` (a chunk found
    damaged when it is first read adds its sentence then).
    """
    folder = Path(folder)
    manifest = _read_manifest(folder)
    try:
        stored_video = VideoRef.from_json(manifest["video"])
        if min(stored_video.n_frames, stored_video.height, stored_video.width) < 1:
            raise ValueError("a video of no frames or pixels")
        files = {str(name): int(size) for name, size in manifest.get("files", {}).items()}
        objects = {}
        for entry in manifest.get("objects", []):
            info = ObjectInfo.from_json(entry)
            objects[info.id] = info
        pending = [_whole(f) for f in manifest.get("pending_frames", [])]
        model = dict(manifest.get("model", {}))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise StoreError(
            f"{folder / MANIFEST} has a field of the wrong type (was it edited by hand?); "
            "restore it from a backup, or track into a new folder."
        ) from None
    if video is not None:
        problem = stored_video.mismatch(video)
        if problem:
            raise StoreError(f"{folder.name} was made for another video: {problem}.")
    data = folder / manifest["data"]
    warnings: list[str] = []
    prompts = _load_prompts(data / PROMPTS_FILE, warnings)
    results = TrackResults(stored_video.n_frames, stored_video.height, stored_video.width)
    for name, size in sorted(files.items()):
        if name.startswith(f"{MASKS_FOLDER}/"):
            _attach_chunk(results, data / name, size, warnings)
    return Annotation(
        stored_video,
        prompts,
        results,
        objects,
        model,
        pending,
        warnings,
        folder,
        str(manifest["data"]),
    )


def _whole(value: Any) -> int:
    """An integer stored as one; anything else (2.5, "3", true) is a wrong type."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not a whole number")
    return value


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise StoreError(f"{folder} is not a session folder: it has no {MANIFEST}.")
    try:
        manifest = json.loads(path.read_text())
        version = int(manifest["format_version"])
    except (OSError, ValueError, KeyError, TypeError):
        raise StoreError(f"{path} is damaged and cannot be read.") from None
    if version > FORMAT_VERSION:
        raise StoreError(
            f"{folder.name} was saved in format {version} by a newer napari-sam2-track "
            f"(this one reads up to {FORMAT_VERSION}); update the plugin to open it."
        )
    data = str(manifest.get("data", ""))
    named_here = data.startswith(DATA_PREFIX) and Path(data).name == data
    if not named_here or not (folder / data).is_dir() or "video" not in manifest:
        raise StoreError(f"{folder.name} is missing the data its {MANIFEST} names.")
    return manifest


def _load_prompts(path: Path, warnings: list[str]) -> PromptSet:
    prompts = PromptSet()
    try:
        rows = json.loads(path.read_bytes())["prompts"]
        for row in rows:
            mask = decode_mask(rle_from_json(row["mask"])) if row.get("mask") else None
            box = tuple(row["box"]) if row.get("box") else None
            prompt = FramePrompt(row["points"], row["labels"], box, mask)
            prompts.set(_whole(row["frame"]), _whole(row["obj_id"]), prompt)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        warnings.append(f"the prompts in {path.parent.name}/{path.name} could not be read.")
        return PromptSet()
    return prompts


def _attach_chunk(results: TrackResults, path: Path, size: int, warnings: list[str]) -> None:
    shape = [results.height, results.width]

    def load() -> dict[int, dict[int, ObjectMask]]:
        try:
            chunk = json.loads(gzip.decompress(path.read_bytes()))
            masks = {
                int(frame): {int(o): _object_mask(e) for o, e in objects.items()}
                for frame, objects in chunk.items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError, zlib.error):
            warnings.append(f"the masks in {path.name} are damaged and were skipped.")
            return {}
        if any(e.rle["size"] != shape for objects in masks.values() for e in objects.values()):
            warnings.append(
                f"the masks in {path.name} do not fit the video's {shape[1]}x{shape[0]} frames "
                "and were skipped."
            )
            return {}
        if any(not 0 <= frame < results.n_frames for frame in masks):
            warnings.append(f"the masks in {path.name} name frames the video lacks; skipped.")
            return {}
        return masks

    if not path.is_file() or path.stat().st_size != size:
        warnings.append(f"the masks in {path.name} are missing or damaged and were skipped.")
        return
    first = int(path.name.split(".")[0])
    results.add_lazy_chunk(range(first, min(first + CHUNK_FRAMES, results.n_frames)), load)


def _object_mask(entry: dict) -> ObjectMask:
    box = tuple(entry["box"]) if entry.get("box") is not None else None
    painted = entry.get("painted", False)
    if not isinstance(painted, bool):
        raise TypeError("painted is true or false")
    rle = rle_from_json(entry["rle"])
    return ObjectMask(rle, float(entry["score"]), box, int(entry["area"]), painted)
