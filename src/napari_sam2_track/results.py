"""Tracking results kept per frame and object as run-length encoded masks.

A dense mask per frame would grow with video length (1080p: 2 MB a frame and object);
COCO's compressed RLE is a few hundred bytes for a typical object and is what the
exports write anyway. Each mask's box follows the one box convention of
:mod:`~napari_sam2_track.boxes`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from .boxes import Box
from .specks import DEFAULT_SPECKS, SpeckRule, box_without_specks


def encode_mask(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a 2-D boolean mask."""
    return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))


def decode_mask(rle: dict) -> np.ndarray:
    return mask_utils.decode(rle).astype(bool)


def rle_json(rle: dict) -> dict:
    """A pycocotools RLE with its byte counts as text, as COCO JSON files hold it."""
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_counts_json(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE (run lengths as a list, column-major, background first),
    the form every COCO-style reader takes, YouTube-VIS's included."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
    if flat.size and flat[0]:
        counts.insert(0, 0)
    return {"size": [int(v) for v in mask.shape], "counts": counts}


def rle_from_json(data: dict) -> dict:
    """Inverse of :func:`rle_json`."""
    return {"size": [int(v) for v in data["size"]], "counts": data["counts"].encode("ascii")}


@dataclass(frozen=True)
class ObjectMask:
    """One object on one frame: its mask (as RLE), presence score and box, and whether
    it was painted by hand rather than given by SAM 2."""

    rle: dict
    score: float
    box: Box | None
    area: int
    painted: bool = False

    @classmethod
    def from_mask(
        cls,
        mask: np.ndarray,
        score: float = 1.0,
        specks: SpeckRule = DEFAULT_SPECKS,
        painted: bool = False,
    ) -> ObjectMask:
        """The entry of a mask; its box leaves out the specks ``specks`` names."""
        mask = np.asarray(mask, dtype=bool)
        box = box_without_specks(mask, specks)
        return cls(encode_mask(mask), float(score), box, int(mask.sum()), painted)

    @property
    def mask(self) -> np.ndarray:
        return decode_mask(self.rle)

    @property
    def empty(self) -> bool:
        return self.area == 0


def labels_of(
    objects: dict[int, ObjectMask], height: int, width: int, dtype=np.uint32
) -> np.ndarray:
    """The label image of one frame's objects (see :meth:`TrackResults.labels`)."""
    out = np.zeros((height, width), dtype=dtype)
    for obj_id, entry in sorted(objects.items(), key=lambda item: (item[1].score, item[0])):
        if not entry.empty:
            out[entry.mask] = obj_id
    return out


class TrackResults:
    """Masks of every tracked object on every frame where it was computed.

    A frame an object was never tracked on has no entry; a frame where it was tracked
    and is absent has an empty :class:`ObjectMask`. Safe to read while a worker writes.

    Results loaded from disk arrive as lazy chunks: a chunk is read the first time one
    of its frames is asked for; questions about all frames read them all.
    """

    def __init__(self, n_frames: int, height: int, width: int):
        self.n_frames, self.height, self.width = n_frames, height, width
        #: What boxes of masks set here leave out.
        self.specks = DEFAULT_SPECKS
        self._frames: dict[int, dict[int, ObjectMask]] = {}
        self._lock = threading.Lock()
        self._chunk_of_frame: dict[int, int] = {}
        self._chunks: dict[int, tuple[range, Callable[[], dict]]] = {}
        self._chunk_ids = itertools.count()

    def add_lazy_chunk(
        self, frames: range, load: Callable[[], dict[int, dict[int, ObjectMask]]]
    ) -> None:
        """Register results of ``frames`` that ``load()`` will produce when first needed."""
        with self._lock:
            chunk = next(self._chunk_ids)
            self._chunks[chunk] = (frames, load)
            for frame in frames:
                self._chunk_of_frame[frame] = chunk

    def _ensure(self, frame: int) -> None:
        """Load the chunk holding ``frame`` if it is still on disk (lock held)."""
        chunk = self._chunk_of_frame.get(frame)
        if chunk is None:
            return
        frames, load = self._chunks.pop(chunk)
        for f in frames:
            self._chunk_of_frame.pop(f, None)
        for f, objects in load().items():
            self._frames.setdefault(f, {}).update(objects)

    def _ensure_all(self) -> None:
        while self._chunk_of_frame:
            self._ensure(next(iter(self._chunk_of_frame)))

    def set(self, frame: int, obj_id: int, mask: np.ndarray | ObjectMask, score: float = 1.0):
        entry = (
            mask
            if isinstance(mask, ObjectMask)
            else ObjectMask.from_mask(mask, score, self.specks)
        )
        size = tuple(entry.rle["size"])
        if size != (self.height, self.width):
            raise ValueError(
                f"a {size[1]}x{size[0]} mask does not fit {self.width}x{self.height} frames."
            )
        if not 0 <= frame < self.n_frames:
            raise IndexError(f"frame {frame} is out of range: the video has {self.n_frames}.")
        with self._lock:
            self._ensure(frame)
            self._frames.setdefault(int(frame), {})[int(obj_id)] = entry

    def get(self, frame: int, obj_id: int) -> ObjectMask | None:
        with self._lock:
            self._ensure(frame)
            return self._frames.get(frame, {}).get(obj_id)

    def frame(self, frame: int) -> dict[int, ObjectMask]:
        """All objects on a frame, by object id (a copy)."""
        with self._lock:
            self._ensure(frame)
            return dict(self._frames.get(frame, {}))

    def frames(self) -> list[int]:
        with self._lock:
            self._ensure_all()
            return sorted(f for f, objects in self._frames.items() if objects)

    def frames_of(self, obj_id: int) -> list[int]:
        with self._lock:
            self._ensure_all()
            return sorted(f for f, objects in self._frames.items() if obj_id in objects)

    def object_ids(self) -> list[int]:
        with self._lock:
            self._ensure_all()
            return sorted({o for objects in self._frames.values() for o in objects})

    def discard(self, frame: int, obj_id: int) -> bool:
        with self._lock:
            self._ensure(frame)
            return self._frames.get(frame, {}).pop(obj_id, None) is not None

    def remove_object(self, obj_id: int) -> list[int]:
        """Forget an object everywhere; returns the frames it was on."""
        with self._lock:
            self._ensure_all()
            touched = [f for f, objects in self._frames.items() if objects.pop(obj_id, None)]
        return sorted(touched)

    def clear(self, frames: Iterable[int] | None = None) -> None:
        with self._lock:
            if frames is None:
                self._chunk_of_frame.clear()
                self._chunks.clear()
                self._frames.clear()
            for frame in frames or ():
                self._ensure(frame)
                self._frames.pop(frame, None)

    @property
    def loaded_frames(self) -> int:
        """How many frames are in memory (the rest wait on disk)."""
        with self._lock:
            return len(self._frames)

    def labels(self, frame: int, dtype=np.uint32) -> np.ndarray:
        """A label image of the frame: pixel = object id, 0 = none.

        Where objects overlap, the one with the higher score is shown (ties: higher id).
        """
        return labels_of(self.frame(frame), self.height, self.width, dtype)

    def boxes(self, frame: int) -> dict[int, Box]:
        return {o: e.box for o, e in self.frame(frame).items() if e.box is not None}

    def __iter__(self) -> Iterator[tuple[int, dict[int, ObjectMask]]]:
        for frame in self.frames():
            yield frame, self.frame(frame)

    def __len__(self) -> int:
        return len(self.frames())
