"""SAM 2's image-encoder output per frame, kept within a byte budget.

The image encoder is most of a frame's cost, and SAM 2 keeps its output for one frame
only, so a correction and every re-propagation would encode frames again. Here each
frame's features are kept, least recently used first out, and handed back to SAM 2
through the ``cached_features`` entry of its inference state.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .feature_store import DiskFeatures

#: The largest default budget, whatever the memory available.
MAX_DEFAULT_BUDGET = 4 * 2**30
#: The share of the memory available that the default budget takes.
DEFAULT_SHARE = 0.25


def default_budget(device: torch.device | None = None) -> int:
    """A quarter of the memory free where the features live, at most 4 GiB."""
    if device is not None and device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # not on Linux or macOS
            free = 4 * MAX_DEFAULT_BUDGET
    return int(min(MAX_DEFAULT_BUDGET, free * DEFAULT_SHARE))


class FeatureCache:
    """Frames' encoder outputs, least recently used evicted past ``budget_bytes``.

    Positional encodings depend only on the feature maps' sizes, so one copy serves
    every frame and counts once.
    """

    def __init__(self, budget_bytes: int, disk: DiskFeatures | None = None, device: Any = None):
        self.budget_bytes = max(0, int(budget_bytes))
        #: Frames kept on disk too, read back on a miss here (see :mod:`.feature_store`).
        self.disk = disk
        self._device = device
        self.nbytes = 0
        self.hits = self.misses = self.disk_hits = 0
        self._entries: OrderedDict[int, tuple[Any, dict, int]] = OrderedDict()
        self._positions: dict[tuple, list] = {}
        self._placeholder = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, frame: int) -> bool:
        return frame in self._entries or (self.disk is not None and frame in self.disk)

    def get(self, frame: int) -> tuple[Any, dict] | None:
        """SAM 2's ``(image, backbone_out)`` for a frame, or None."""
        with self._lock:
            entry = self._entries.get(frame)
            if entry is not None:
                self._entries.move_to_end(frame)
                self.hits += 1
                return entry[0], entry[1]
        stored = None if self.disk is None else self.disk.load(frame, self._device)
        if stored is None:
            self.misses += 1
            return None
        self.disk_hits += 1
        fpn, positions = stored
        return self._keep(frame, fpn, positions, fpn[0])

    def put(self, frame: int, image: Any, backbone_out: dict) -> None:
        """Keep a frame's features (the input image itself is not needed again)."""
        fpn, positions = list(backbone_out["backbone_fpn"]), list(backbone_out["vision_pos_enc"])
        if self._keep(frame, fpn, positions, image) is not None and self.disk is not None:
            self.disk.save(frame, fpn, positions)

    def _keep(self, frame: int, fpn: list, positions: list, like: Any) -> tuple | None:
        import torch

        size = sum(t.nbytes for t in fpn)
        with self._lock:
            if frame in self._entries or size > self.budget_bytes:
                return None
            shapes = tuple(tuple(p.shape) for p in positions)
            positions = self._positions.setdefault(shapes, positions)
            if self._placeholder is None:  # SAM 2 expands the image but never reads it
                self._placeholder = torch.zeros((1, 1, 1, 1), dtype=like.dtype).to(like.device)
            kept = {"backbone_fpn": fpn, "vision_pos_enc": positions, "vision_features": fpn[-1]}
            self._entries[frame] = (self._placeholder, kept, size)
            self.nbytes += size
            while self.nbytes > self.budget_bytes:
                _, (_, _, evicted) = self._entries.popitem(last=False)
                self.nbytes -= evicted
            return self._placeholder, kept


class FeatureView(dict):
    """What SAM 2 finds as ``cached_features``: a lookup into a :class:`FeatureCache`.

    SAM 2 replaces it with a one-frame dict when it encodes a frame; the tracker takes
    that frame into the cache and puts the view back after each call.
    """

    def __init__(self, cache: FeatureCache):
        super().__init__()
        self.cache = cache

    def get(self, frame, default=None):
        found = self.cache.get(frame)
        return default if found is None else found
