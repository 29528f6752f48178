"""Viewer stalls while propagating: how late a 10 ms heartbeat on the viewer's thread runs.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/viewer_stalls.py
        [--frames 40] [--image-size 256] [--video VIDEO] [--cache-dir DIR] [--profile FILE]

Makes (once, then reuses) a 1920x1080 h264 copy of the cups clip, opens it in a shown
napari viewer through the plugin's reader, docks the SAM 2 Tracker widget, starts SAM 2.1
tiny with random weights (no download) on the CPU, adds a point on frame 0 and
propagates over the first N frames with Follow frames on.

Meanwhile a QTimer ticks every 10 ms on the viewer's thread. A tick's stall is how much
later than 10 ms after the previous tick it ran (gap - 10 ms, at least 0); the figures
count the ticks from the first tracked frame reaching the viewer to the last one taken
in (the run's start and the work after it are reported apart). It also prints the time
the viewer's thread spent in the controller's handler for each tracked frame (napari's
progress bar runs queued events inside it, the repaint among them) and, with
``--profile``, where that thread spent its time (pstats saved in FILE). The last line
reads ``stall_p99_ms=X stall_max_ms=Y``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from video_reader import SHARED_CUPS, make_1080p_copy

PLUGIN = "napari-sam2-track"
TICK_MS = 10


def wait_for(signal) -> None:
    """Run the Qt event loop until ``signal`` is emitted (a Qt or psygnal signal)."""
    from qtpy.QtCore import QEventLoop

    loop = QEventLoop()

    def quit_loop(*_args) -> None:
        loop.quit()

    signal.connect(quit_loop)
    loop.exec_()
    signal.disconnect(quit_loop)


def random_checkpoint(folder: Path, image_size: int) -> Path:
    """SAM 2.1 tiny with random weights, saved in SAM 2's checkpoint format."""
    import torch

    from napari_sam2_track.sam2_backend import build_model

    torch.manual_seed(0)
    model = build_model(image_size=image_size, random_weights=True, device="cpu")
    path = folder / "random_tiny.pt"
    torch.save({"model": model.predictor.state_dict()}, path)
    return path


def start_tracking(viewer, video: Path, checkpoint: Path, image_size: int, frames: int):
    """Open ``video``, dock the widget and start tracking; the widget, once ready."""
    from napari_sam2_track import models

    viewer.open(str(video), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "SAM 2 Tracker")
    widget.model.value = models.DEFAULT_MODEL
    widget.checkpoint.value = checkpoint
    widget.image_size.value = image_size
    widget.device.value = "cpu"
    widget.follow.value = True
    wait_for(widget.start_tracking().finished)
    # Set after the start: the tracking layers coming in reset the range to the video's.
    widget.limit.value = True
    widget.first_frame.value, widget.last_frame.value = 0, frames - 1
    widget.to_end.value = True
    return widget


@dataclass
class Handled:
    """One tracked frame taken in by the controller's handler (times in seconds)."""

    start: float
    end: float
    wall_ms: float  # less the work after the run, when it ran inside
    cpu_ms: float  # likewise


class Recorder:
    """A 10 ms heartbeat on the viewer's thread, and the controller's handler timed.

    Keeps the heartbeat's ticks, the handler's runs for tracked frames, and when the
    work after the run (boxes, saving) began and ended. That work may run inside the
    last frame's handler (napari's progress bar runs queued events), so it is left out
    of the handler's times and counted apart.
    """

    def __init__(self, controller) -> None:
        from qtpy.QtCore import Qt, QTimer

        self.ticks: list[float] = []
        self.handled: list[Handled] = []
        self.done = (np.inf, np.inf)
        self.cpu_ms = 0.0  # the viewer's thread's, from the first frame to the last
        self._done_s = np.zeros(2)  # wall and CPU of the work after the run
        self._first = np.zeros(2)  # the clocks when the first frame reached the viewer
        self._timer = QTimer()
        self._timer.setTimerType(Qt.PreciseTimer)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self._wrap(controller)

    def _clocks(self) -> np.ndarray:
        """Wall and CPU seconds of the viewer's thread, less the work after the run."""
        return np.array([time.perf_counter(), time.thread_time()]) - self._done_s

    def _wrap(self, controller) -> None:
        from napari_sam2_track.prompt_queue import FrameTracked

        handler, finish = controller._on_propagated, controller._propagation_done

        def timed(message, bar) -> None:
            start, before = time.perf_counter(), self._clocks()
            if isinstance(message, FrameTracked) and not self.handled:
                self._first = before
            handler(message, bar)
            if isinstance(message, FrameTracked):
                wall_ms, cpu_ms = (self._clocks() - before) * 1000
                self.handled.append(Handled(start, time.perf_counter(), wall_ms, cpu_ms))
                self.cpu_ms = (self._clocks() - self._first)[1] * 1000

        def timed_finish(bar) -> None:
            start = np.array([time.perf_counter(), time.thread_time()])
            finish(bar)
            spent = np.array([time.perf_counter(), time.thread_time()]) - start
            self.done = (start[0], start[0] + spent[0])
            self._done_s += spent

        controller._on_propagated = timed
        controller._propagation_done = timed_finish

    def start(self) -> None:
        self.ticks.append(time.perf_counter())
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
        self.ticks.append(time.perf_counter())

    def stalls(self, start: float, end: float, besides: tuple = (np.inf, np.inf)) -> np.ndarray:
        """How late each tick overlapping [start, end] but not ``besides`` ran (ms)."""
        ticks = np.asarray(self.ticks)
        before, after = ticks[:-1], ticks[1:]
        overlapping = (after > start) & (before < end)
        overlapping &= ~((after > besides[0]) & (before < besides[1]))
        return np.maximum((after - before)[overlapping] * 1000 - TICK_MS, 0.0)


def propagate(widget, recorder: Recorder, profile: cProfile.Profile | None) -> float:
    """Propagate with the heartbeat (and the profiler) on; the wall time in seconds."""
    start = time.perf_counter()
    recorder.start()
    if profile is not None:
        profile.enable()  # the viewer's thread only: the worker thread is not profiled
    widget.run_propagation()
    wait_for(widget.controller.propagation_finished)
    if profile is not None:
        profile.disable()
    recorder.stop()
    return time.perf_counter() - start


def summary(values) -> str:
    values = np.asarray(values)
    if not len(values):
        return "none"
    p50, p99 = np.percentile(values, [50, 99])
    return f"median {p50:.1f}, p99 {p99:.1f}, max {values.max():.1f} ms ({len(values)})"


def report(recorder: Recorder, wall: float, size: int) -> np.ndarray:
    """Print the figures; the stalls while frames were being shown."""
    handled = recorder.handled
    frames = len(handled)
    print(f"tracked {frames} frames of 1920x1080 at {size} px in {wall:.1f} s")
    wall_ms = [h.wall_ms for h in handled]
    print("handler per frame (ms):", " ".join(f"{ms:.0f}" for ms in wall_ms))
    print(f"handler per frame, wall: {summary(wall_ms)}")
    print(f"handler per frame, CPU:  {summary([h.cpu_ms for h in handled])}")
    print(f"viewer's thread CPU per frame shown: {recorder.cpu_ms / max(frames, 1):.1f} ms")
    start, end = (handled[0].start, handled[-1].end) if handled else (0.0, 0.0)
    before, done = recorder.stalls(recorder.ticks[0], start), recorder.stalls(*recorder.done)
    print(f"worst stall before the first frame (the run's start): {before.max(initial=0):.0f} ms")
    print(f"worst stall in the work after the run (boxes, saving): {done.max(initial=0):.0f} ms")
    stalls = recorder.stalls(start, end, recorder.done)
    print(f"stalls while showing frames: {summary(stalls)}")
    return stalls


def measure(args: argparse.Namespace, video: Path, checkpoint: Path) -> np.ndarray:
    import napari

    viewer = napari.Viewer(show=True)
    try:
        widget = start_tracking(viewer, video, checkpoint, args.image_size, args.frames)
        controller = widget.controller
        viewer.dims.set_current_step(0, 0)
        controller.add_point(540, 960)
        wait_for(controller._preview_worker.finished)
        recorder = Recorder(controller)
        profile = cProfile.Profile() if args.profile else None
        wall = propagate(widget, recorder, profile)
        if profile is not None:
            profile.dump_stats(args.profile)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
        return report(recorder, wall, args.image_size)
    finally:
        viewer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--video", type=Path, default=SHARED_CUPS)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--profile", type=Path, help="profile the viewer's thread into FILE")
    args = parser.parse_args(argv)
    if not args.video.exists():
        print(f"{args.video} is absent; give a video with --video.", file=sys.stderr)
        return 1
    video = make_1080p_copy(args.video, args.cache_dir / f"bench_1080p_{args.video.stem}.mp4")
    with tempfile.TemporaryDirectory() as folder:
        os.environ["NAPARI_SAM2_TRACK_AUTOSAVE"] = str(Path(folder) / "autosave")
        checkpoint = random_checkpoint(Path(folder), args.image_size)
        stalls = measure(args, video, checkpoint)
    p99 = float(np.percentile(stalls, 99)) if len(stalls) else 0.0
    print(f"stall_p99_ms={p99:.1f} stall_max_ms={stalls.max(initial=0.0):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
