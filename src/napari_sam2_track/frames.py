"""Lazy, array-like frame sequences with a bounded cache.

napari, numpy-style slicing and the tracking engine all see a (T, H, W, 3) uint8 array;
only the frames actually asked for are decoded, and at most ``cache_bytes`` of decoded
frames are kept.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from numbers import Integral

import numpy as np

DEFAULT_CACHE_BYTES = 192 * 2**20
#: How many recent requests a frame sequence remembers to tell which way reading goes.
RECENT_REQUESTS = 8


class FrameCache:
    """Least-recently-used frames, bounded by their total size in bytes; thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._frames: OrderedDict[int, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, index: int) -> np.ndarray | None:
        with self._lock:
            frame = self._frames.get(index)
            if frame is not None:
                self._frames.move_to_end(index)
            return frame

    def put(self, index: int, frame: np.ndarray) -> None:
        with self._lock:
            if index in self._frames:
                self._frames.move_to_end(index)
                return
            self._frames[index] = frame
            self._bytes += frame.nbytes
            # Always keep the newest frame, even if it alone exceeds the budget.
            while self._bytes > self.max_bytes and len(self._frames) > 1:
                _, evicted = self._frames.popitem(last=False)
                self._bytes -= evicted.nbytes

    def __contains__(self, index: int) -> bool:
        with self._lock:
            return index in self._frames

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes


class LazyFrames(ABC):
    """Base of frame sequences that decode on demand; subclasses implement ``_load``.

    Frames come back read-only, so a cached frame can never be changed by a caller.
    Access is thread-safe: napari's slicing and a tracking worker may read at once, and
    a cached frame never waits for another reader's decode.
    """

    dtype = np.dtype(np.uint8)

    def __init__(self, n_frames: int, height: int, width: int, cache_bytes: int):
        self.shape = (n_frames, height, width, 3)
        self._cache = FrameCache(cache_bytes)
        self._lock = threading.RLock()  # held while decoding
        # Several readers (napari's slicing, a tracking worker) may interleave.
        self._recent: deque[int] = deque(maxlen=RECENT_REQUESTS)
        self._recent_lock = threading.Lock()

    @abstractmethod
    def _load(self, index: int) -> np.ndarray:
        """Decode frame ``index`` (already bounds-checked) and cache what it decoded."""

    @property
    def warnings(self) -> list[str]:
        """Sentences on what looks wrong with the source but still reads."""
        return []

    @property
    def ndim(self) -> int:
        return 4

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return self.size

    def __len__(self) -> int:
        return self.shape[0]

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` as a read-only (H, W, 3) uint8 array; negative indices count back."""
        n = self.shape[0]
        if not -n <= index < n:
            raise IndexError(f"frame {index} is out of range: the video has {n} frames.")
        index = int(index) % n
        frame = self._cache.get(index)
        if frame is None:
            with self._lock:
                frame = self._cache.get(index)  # another reader may have decoded it meanwhile
                if frame is None:
                    frame = self._load(index)
        with self._recent_lock:
            self._recent.append(index)
        return frame

    def recent_requests(self) -> list[int]:
        """The frames last asked for, oldest first (by any reader)."""
        with self._recent_lock:
            return list(self._recent)

    def _frame_indices(self, key) -> Sequence[int] | int:
        if isinstance(key, Integral):
            return int(key)
        if isinstance(key, slice):
            return range(*key.indices(self.shape[0]))
        indices = np.asarray(key)
        if indices.dtype == bool:
            if indices.shape != (self.shape[0],):
                raise IndexError("a boolean frame index must have one entry per frame.")
            return np.flatnonzero(indices).tolist()
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise IndexError(f"unsupported frame index {key!r}.")
        return indices.tolist()

    def __getitem__(self, key) -> np.ndarray:
        key = _expand_ellipsis(key if isinstance(key, tuple) else (key,), self.ndim)
        first, rest = (key[0], key[1:]) if key else (slice(None), ())
        indices = self._frame_indices(first)
        if isinstance(indices, int):
            frame = self.frame(indices)
            return frame[rest] if rest else frame
        stack = np.empty((len(indices), *self.shape[1:]), dtype=self.dtype)
        for out, index in enumerate(indices):
            stack[out] = self.frame(index)
        return stack[(slice(None), *rest)] if rest else stack

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self[:]
        return array if dtype is None else array.astype(dtype, copy=False)

    def __iter__(self):
        for index in range(self.shape[0]):
            yield self.frame(index)

    def cache_info(self) -> dict[str, int]:
        with self._lock:
            return {"frames": len(self._cache), "bytes": self._cache.nbytes}


def reads_backward(index: int, recent: Iterable[int], reach: int) -> bool:
    """Whether ``index`` lies at most ``reach`` frames before one of the ``recent`` requests."""
    return any(index < earlier <= index + reach for earlier in recent)


def _expand_ellipsis(key: tuple, ndim: int) -> tuple:
    if not any(k is Ellipsis for k in key):
        return key
    at = next(i for i, k in enumerate(key) if k is Ellipsis)
    fill = (slice(None),) * (ndim - len(key) + 1)
    return key[:at] + fill + key[at + 1 :]
