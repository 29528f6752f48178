"""A (T, H, W) label array drawn from tracking results, for napari's Labels layer.

A dense label volume would cost T x H x W x 2 bytes (41 GB for 10,000 frames of
1080p). This one renders a frame from the run-length encoded results when napari asks
for it, keeps a few rendered frames, and keeps the frames a person painted on until
they are folded back into the results (paint edits are the truth for boxes and exports).
A propagation's worker draws each frame it tracked (:class:`FrameDrawer`), so the
viewer's thread only takes the image in.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from numbers import Integral

import numpy as np

from .results import ObjectMask, TrackResults, labels_of


class LabelVolume:
    """Array-like (T, H, W) of object ids that napari can show and paint into; for the
    viewer's thread only."""

    dtype = np.dtype(np.uint16)
    ndim = 3

    def __init__(self, results: TrackResults, cached_frames: int = 32):
        self.results = results
        self.shape = (results.n_frames, results.height, results.width)
        self._rendered: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached_frames = cached_frames
        self._painted: dict[int, np.ndarray] = {}

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as an (H, W) label image (read-only unless painted)."""
        t = int(t)
        if t in self._painted:
            return self._painted[t]
        image = self._rendered.get(t)
        if image is None:
            image = self.results.labels(t, dtype=self.dtype)
        return self._remember(t, image)

    def _remember(self, t: int, image: np.ndarray) -> np.ndarray:
        image.flags.writeable = False
        self._rendered[t] = image
        self._rendered.move_to_end(t)
        while len(self._rendered) > self._cached_frames:
            self._rendered.popitem(last=False)
        return image

    def keep(self, drawn: DrawnLabels) -> bool:
        """Take a frame drawn elsewhere as its rendering; False (and not taken) when the
        frame's results changed since it was drawn, or it is painted on."""
        t, image = drawn.frame, drawn.take()
        if image is None or t in self._painted or self.results.frame(t) != drawn.objects:
            return False
        self._remember(t, image)
        return True

    def invalidate(self, frames: Iterable[int] | None = None) -> None:
        """Forget rendered frames whose results changed (all, without ``frames``)."""
        if frames is None:
            self._rendered.clear()
            return
        for t in frames:
            self._rendered.pop(int(t), None)

    def _frames_and_rest(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        return first, rest

    def __getitem__(self, key) -> np.ndarray:
        first, rest = self._frames_and_rest(key)
        if isinstance(first, Integral):
            # A copy: napari paints into the slice it was given as well as through
            # __setitem__, and a cached frame must not change behind the results.
            return np.array(self.frame(first)[rest] if rest else self.frame(first))
        if isinstance(first, np.ndarray) and first.ndim == 1 and len(rest) == 2:
            return self._gather(first, *rest)  # napari's fancy indexing while painting
        frames = range(*first.indices(self.shape[0])) if isinstance(first, slice) else first
        stack = (
            np.stack([self.frame(t) for t in frames])
            if len(frames)
            else (np.zeros((0, *self.shape[1:]), self.dtype))
        )
        return stack[(slice(None), *rest)] if rest else stack

    def _gather(self, ts: np.ndarray, ys, xs) -> np.ndarray:
        out = np.empty(len(ts), dtype=self.dtype)
        for t in np.unique(ts):
            rows = ts == t
            out[rows] = self.frame(t)[np.asarray(ys)[rows], np.asarray(xs)[rows]]
        return out

    def __setitem__(self, key, value) -> None:
        first, rest = self._frames_and_rest(key)
        if isinstance(first, slice):
            frames = range(*first.indices(self.shape[0]))
            if len(frames) == 1:  # napari writes a brush's box back as a one-frame block
                block = np.asarray(value, dtype=self.dtype)
                self[(frames[0], *rest)] = block[0] if block.ndim == 1 + len(rest) else block
                return
        if isinstance(first, Integral):
            self._editable(first)[rest or slice(None)] = value
            return
        if not (isinstance(first, np.ndarray) and len(rest) == 2):
            raise IndexError("paint one frame at a time, or with napari's point indices.")
        ys, xs = (np.asarray(r) for r in rest)
        values = np.broadcast_to(np.asarray(value, dtype=self.dtype), first.shape)
        for t in np.unique(first):
            rows = first == t
            self._editable(t)[ys[rows], xs[rows]] = values[rows]

    def _editable(self, t: int) -> np.ndarray:
        t = int(t)
        if t not in self._painted:
            self._painted[t] = np.array(self.frame(t), copy=True)
            self._rendered.pop(t, None)
        return self._painted[t]

    @property
    def rendered_frames(self) -> list[int]:
        """The frames kept rendered (at most ``cached_frames``)."""
        return sorted(self._rendered)

    @property
    def painted_frames(self) -> list[int]:
        return sorted(self._painted)

    def take_painted(self) -> dict[int, np.ndarray]:
        """Hand over painted frames (to fold into the results) and stop holding them."""
        painted, self._painted = self._painted, {}
        return painted

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self[:]
        return array if dtype is None else array.astype(dtype, copy=False)


class DrawnLabels:
    """A frame's label image drawn off the viewer's thread, with the masks it shows.

    The image is handed over once (:meth:`take`), which gives its place back to the
    :class:`FrameDrawer`; a message kept after that holds no image.
    """

    def __init__(
        self,
        frame: int,
        image: np.ndarray,
        objects: dict[int, ObjectMask],
        release: Callable[[], None],
    ):
        self.frame, self.objects = frame, objects
        self._image: np.ndarray | None = image
        self._release = release

    def take(self) -> np.ndarray | None:
        """The image, the first time (None after)."""
        image, self._image = self._image, None
        if image is not None:
            self._release()
        return image


class FrameDrawer:
    """Draws frames' label images in a worker, at most ``limit`` not yet taken in.

    A worker far ahead of the viewer draws no more (the viewer renders those frames
    itself when it shows them), so the images in flight stay bounded.
    """

    def __init__(self, results: TrackResults, limit: int = 2):
        self.results = results
        self._places = threading.BoundedSemaphore(limit)

    def draw(self, frame: int) -> DrawnLabels | None:
        """Frame ``frame`` drawn as :meth:`LabelVolume.frame` would (None: no place)."""
        if not self._places.acquire(blocking=False):
            return None
        objects = self.results.frame(frame)  # what LabelVolume.keep checks the image against
        results = self.results
        image = labels_of(objects, results.height, results.width, LabelVolume.dtype)
        return DrawnLabels(frame, image, objects, self._places.release)


def fold_painted_frame(results: TrackResults, frame: int, labels: np.ndarray) -> list[int]:
    """Make a painted label image the truth for its frame; returns the objects changed.

    Objects on the frame before or after painting get the painted pixels as their mask
    (an object painted away gets an empty mask, so it counts as absent there).
    """
    before = results.frame(frame)
    present = {int(v) for v in np.unique(labels) if v != 0}
    changed = []
    for obj_id in sorted(set(before) | present):
        mask = labels == obj_id
        old = before.get(obj_id)
        if old is not None and np.array_equal(old.mask, mask):
            continue
        score = old.score if old is not None else 1.0
        results.set(frame, obj_id, ObjectMask.from_mask(mask, score, results.specks, True))
        changed.append(obj_id)
    return changed
