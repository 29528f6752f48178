"""Encoding the frames a person is looking at before they click there.

While nothing else runs, one worker encodes the frame on screen, then the next frames
in the direction the person is moving, one at a time; a click or a propagation stops it
between two frames, so a click waits for at most the one encode in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from napari.qt.threading import thread_worker
from psygnal import Signal
from qtpy.QtCore import QTimer

#: How many frames past the one on screen are encoded ahead.
DEFAULT_AHEAD = 8
#: How long a frame stays on screen before prefetching starts (scrubbing skips it).
SETTLE_MS = 100


def prefetch_order(
    current: int, step: int, n_frames: int, ahead: int, is_encoded: Callable[[int], bool]
) -> list[int]:
    """The frames to encode, nearest first: ``current``, then ``ahead`` frames in the
    direction of ``step``, skipping those already encoded."""
    step = 1 if step >= 0 else -1
    frames = (current + step * k for k in range(ahead + 1))
    return [f for f in frames if 0 <= f < n_frames and not is_encoded(f)]


class Prefetcher:
    """Runs :func:`prefetch_order`'s frames through ``tracker.encode`` while idle.

    ``can_run()`` says whether nothing else needs the model; :meth:`pause` stops the
    worker between two frames, :meth:`resume` starts it again from the frame on screen.
    """

    #: Emitted on the main thread with each frame encoded.
    encoded = Signal(int)

    def __init__(
        self,
        tracker: Any,
        n_frames: int,
        can_run: Callable[[], bool],
        ahead: int = DEFAULT_AHEAD,
    ):
        self.tracker, self.n_frames, self.ahead = tracker, n_frames, ahead
        self._can_run = can_run
        self._frame, self._step = 0, 1
        self._worker = None
        self._paused = False
        #: Closed for good: nothing resumes it.
        self.closed = False
        self._failed_at: int | None = None  # a frame that failed to encode is not retried
        self._idle = threading.Event()  # set while no encode runs
        self._idle.set()
        self._flight: _Flight | None = None  # the running worker's stop flag
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self._start)

    @property
    def running(self) -> bool:
        return self._worker is not None

    @property
    def encoding(self) -> bool:
        """Whether a frame is being encoded now, in the worker's thread."""
        return not self._idle.is_set()

    def frame_shown(self, frame: int) -> None:
        """The viewer moved to ``frame``: prefetch from there once it settles."""
        if frame != self._frame:
            self._step = 1 if frame > self._frame else -1
            self._frame = frame
        self._stop_worker()
        self._timer.start()

    def pause(self) -> None:
        """Stop prefetching (after the encode in flight) until :meth:`resume`."""
        self._paused = True
        self._timer.stop()
        self._stop_worker()

    def resume(self) -> None:
        if self.closed:
            return
        self._paused = False
        self._timer.start()

    def close(self, wait: bool = True, timeout: float = 60.0) -> None:
        """Stop for good; with ``wait``, after the encode in flight (the viewer is
        closing)."""
        self.closed = True
        self.pause()
        if self._flight is not None:
            self._flight.stop()  # no encode starts after this
        if wait:
            self._idle.wait(timeout)

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.quit()

    def _start(self) -> None:
        if self._paused or self._worker is not None or self._failed_at == self._frame:
            return
        if not self._can_run():
            return
        if getattr(self.tracker, "features", True) is None:  # nothing kept to prefetch into
            return
        frames = prefetch_order(
            self._frame, self._step, self.n_frames, self.ahead, self.tracker.is_encoded
        )
        if not frames:
            return
        self._flight = _Flight(self._idle)
        worker = _encode_frames(self.tracker, frames, self._flight)
        worker.yielded.connect(self.encoded.emit)
        worker.finished.connect(self._finished)
        worker.errored.connect(lambda _exc, at=self._frame: setattr(self, "_failed_at", at))
        self._worker = worker
        worker.start()

    def _finished(self) -> None:
        self._worker = None
        if not self._paused:
            self._timer.start()  # the view may have moved on meanwhile


class _Flight:
    """A worker's encodes: each begins only if not stopped, and clears ``idle`` while it
    runs, both under one lock, so a closing viewer waits for exactly the one in flight."""

    def __init__(self, idle: threading.Event):
        self.idle = idle
        self._lock = threading.Lock()
        self._stopped = False

    def begin(self) -> bool:
        with self._lock:
            if self._stopped:
                return False
            self.idle.clear()
            return True

    def stop(self) -> None:
        with self._lock:
            self._stopped = True


@thread_worker(ignore_errors=True)
def _encode_frames(tracker: Any, frames: list[int], flight: _Flight):
    for frame in frames:
        if not flight.begin():
            return
        try:
            tracker.encode(frame)
        finally:
            flight.idle.set()
        yield frame
