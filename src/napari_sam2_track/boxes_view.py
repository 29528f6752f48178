"""The boxes layer: the boxes of the frame on screen, kept in step with the results.

A Shapes layer's every add, remove or data change costs time in proportion to the
shapes it holds, so the layer holds one frame's boxes and swaps them as the viewer
steps: what the viewer's thread spends never grows with the video's length. *Save
Layers* still writes every box, through the token the layer's metadata carries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ._writer import BOXES_SOURCE_KEY, register_boxes_source

#: ``boxes_of(frames, hidden)``: rectangles, features and edge colours on ``frames``
#: (None: all), leaving out the objects in ``hidden``.
BoxesOf = Callable[[set[int] | None, set[int]], tuple[list, dict, np.ndarray]]


class BoxesView:
    """Shows the boxes of the frame on screen in a Shapes layer and keeps them current.

    Parameters
    ----------
    layer : napari.layers.Shapes
        The layer to draw into; it holds the boxes of one frame at a time.
    boxes_of : BoxesOf
        The boxes on some frames (None: all), from the results as they stand.
    hidden : set of int
        Objects whose boxes are not shown (still saved); the caller updates it.
    dims : napari.components.Dims
        The viewer's dims; axis 0 is the video's time axis.
    """

    def __init__(self, layer: Any, boxes_of: BoxesOf, dims: Any, hidden: set[int]):
        self.layer, self._boxes_of, self._dims = layer, boxes_of, dims
        self.hidden = hidden
        self.shown: int | None = None  # the frame whose boxes the layer holds
        token = register_boxes_source(self)
        layer.metadata = {**layer.metadata, BOXES_SOURCE_KEY: token}
        dims.events.current_step.connect(self._on_step)

    def frame_on_screen(self) -> int:
        return int(self._dims.current_step[0])

    def mark_stale(self, frames: list[int] | None) -> None:
        """Frames whose boxes changed (None: all): the layer is redrawn at once if the
        frame on screen is among them, and other frames are drawn when shown."""
        if frames is None or self.frame_on_screen() in frames:
            self.rebuild()

    def update(self) -> None:
        """Make sure the layer shows the frame on screen (it does unless a step was
        missed); draws nothing otherwise."""
        if self.shown != self.frame_on_screen():
            self.rebuild()

    def rebuild(self) -> None:
        """Draw the boxes of the frame on screen again, from the results."""
        frame = self.frame_on_screen()
        rectangles, features, colors = self._boxes_of({frame}, self.hidden)
        layer = self.layer
        # The boxes lie within the video's frames, so the viewer's dims, which a data
        # event recomputes at a cost of milliseconds, need no update.
        with layer.events.data.blocker():
            layer.data = [(rectangle, "rectangle") for rectangle in rectangles]
        layer.features = pd.DataFrame(features)
        # The data setter keeps each slot's colour: the same objects keep theirs.
        if rectangles and not np.array_equal(layer.edge_color, colors):
            layer.edge_color = colors
        self.shown = frame

    def all_boxes(self) -> tuple[list[np.ndarray], dict[str, list]]:
        """Rectangles and features of every box of the video, for *Save Layers*."""
        rectangles, features, _ = self._boxes_of(None, set())
        return rectangles, features

    def stop_following(self) -> None:
        """Leave the layer as it is from now on."""
        self._dims.events.current_step.disconnect(self._on_step)

    def _on_step(self, _event: Any = None) -> None:
        self.update()
