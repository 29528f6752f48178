"""Counting into a napari progress bar at a pace the eye can follow.

napari's Qt progress bar runs the event loop on every change of its value, so counting
each frame of a fast propagation or export would repaint the window for each frame.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

#: The shortest time between two counts the bar is told of.
DEFAULT_INTERVAL_S = 0.1


class PacedProgress:
    """A napari ``progress`` bar, told of the count at most every ``interval`` seconds
    and of the last count when closed.

    Parameters
    ----------
    bar : napari.utils.progress
        The bar to count into; closed by :meth:`close`.
    interval : float
        Seconds between two updates of the bar.
    clock : callable
        Seconds, monotonic.
    """

    def __init__(
        self,
        bar: Any,
        interval: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.bar, self.interval, self._clock = bar, interval, clock
        self.done = 0
        self._shown_at = -math.inf

    def set_total(self, total: int) -> None:
        if total != self.bar.total:
            self.bar.total = total

    def advance(self, count: int = 1) -> None:
        self.show(self.done + count)

    def show(self, done: int, total: int | None = None) -> None:
        """``done`` counted so far (of ``total``, if it changed)."""
        if total is not None:
            self.set_total(total)
        self.done = done
        now = self._clock()
        if now - self._shown_at >= self.interval:
            self._shown_at = now
            self._flush()

    def _flush(self) -> None:
        if self.done != self.bar.n:
            self.bar.update(self.done - self.bar.n)

    def close(self) -> None:
        self._flush()
        self.bar.close()
