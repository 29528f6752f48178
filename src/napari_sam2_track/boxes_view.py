"""The boxes layer kept in step with the results, a few frames at a time.

A Shapes layer takes seconds to rebuild at 10,000 boxes, so after the first drawing
only the frames whose masks changed are drawn again, batched by a short timer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtCore import QTimer

#: ``boxes_of(frames)``: rectangles, features and edge colours on ``frames`` (None: all).
BoxesOf = Callable[[set[int] | None], tuple[list, dict, np.ndarray]]


class BoxesView:
    """Draws the boxes of ``boxes_of`` into a Shapes layer and keeps them current."""

    def __init__(self, layer: Any, boxes_of: BoxesOf, delay_ms: int = 300):
        self.layer = layer
        self._boxes_of = boxes_of
        self._stale: set[int] | None = set()  # frames out of date; None: all
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self.update)

    def mark_stale(self, frames: list[int] | None) -> None:
        """Note frames whose boxes changed (None: all); they are drawn after a pause."""
        if frames is None or self._stale is None:
            self._stale = None
        else:
            self._stale.update(frames)
        if not self._timer.isActive():
            self._timer.start()

    def update(self) -> None:
        """Bring the layer up to date now, as cheaply as it can."""
        self._timer.stop()
        frames, self._stale = self._stale, set()
        if frames is None:
            self.rebuild()
        elif frames:
            self._replace(frames)

    def rebuild(self) -> None:
        """Draw every box again (at the start, and when an object is deleted)."""
        self._stale = set()
        rectangles, features, colors = self._boxes_of(None)
        self.layer.data = [(rectangle, "rectangle") for rectangle in rectangles]
        self.layer.features = pd.DataFrame(features)
        if rectangles:
            self.layer.edge_color = colors

    def _replace(self, frames: set[int]) -> None:
        rectangles, features, colors = self._boxes_of(frames)
        layer = self.layer
        shown = layer.features["frame"].to_numpy() if len(layer.data) else np.zeros(0)
        stale = np.flatnonzero(np.isin(shown, list(frames)))
        if len(stale):
            layer.selected_data = set(stale.tolist())
            layer.remove_selected()
        if rectangles:
            n_kept = len(layer.data)
            layer.add(rectangles, shape_type="rectangle", edge_color=colors)
            kept = layer.features.iloc[:n_kept]  # the added rows hold napari's defaults
            layer.features = pd.concat([kept, pd.DataFrame(features)], ignore_index=True)
