"""Boxes layer figures: how long the viewer's thread spends keeping the boxes up to date.

    python benchmarks/boxes_layer.py [--frames 1000 10000] [--objects 3]

For videos of N frames with every object masked on every frame (so N x objects boxes),
it prints the time of a full rebuild of the boxes layer, of the update that follows a
few newly propagated frames (the frame on screen among them: what the viewer's thread
does while propagating) and of a step to another frame (the whole step, napari's own
slicing of every layer included), each the median of a few runs. The layer holds the
frame on screen only, so none of these grows with the video's length. *Save Layers*
still writes every box: this checks it, and times it (the viewer's thread writes the
CSV when asked). Needs a display (Xvfb headless); uses the bundled model's architecture
but runs no SAM 2 compute.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

RUNS = 7
WIDTHS = (7, 7, 13, 16, 9, 12)  # the table's columns


def median_time(
    action: Callable[[int], None], before: Callable[[int], None] = lambda run: None
) -> float:
    """The median time of ``action(run)`` over :data:`RUNS` runs, each after ``before(run)``."""
    times = []
    for run in range(RUNS):
        before(run)
        start = time.perf_counter()
        action(run)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


HEIGHT, WIDTH = 48, 64


def track(session, frame: int, n_objects: int, shift: int = 0) -> None:
    """Mask every object on ``frame``, as a propagation would; ``shift`` moves them."""
    for obj_id in range(1, n_objects + 1):
        mask = np.zeros((HEIGHT, WIDTH), bool)
        column = (frame + shift) % 40
        mask[obj_id * 4 : obj_id * 4 + 10, column : column + 12] = True
        session.results.set(frame, obj_id, mask)


def tracked_session(n_frames: int, n_objects: int):
    """A session of ``n_frames`` blank frames with every object masked on every frame."""
    from napari_sam2_track import models
    from napari_sam2_track.engine import TrackingSession
    from napari_sam2_track.sam2_backend import build_model

    frames = np.zeros((n_frames, HEIGHT, WIDTH, 3), np.uint8)
    session = TrackingSession(frames, build_model(models.SYNTHETIC_MODEL, device="cpu"))
    for frame in range(n_frames):
        track(session, frame, n_objects)
    return frames, session


def check_shown(controller) -> None:
    """The layer holds the boxes of the frame on screen, as the results have them."""
    from napari_sam2_track.layers import corners_to_box

    frame = controller.current_frame()
    layer = controller.boxes_layer
    shown = {
        int(o): corners_to_box(np.asarray(r))
        for r, o in zip(layer.data, layer.features["obj_id"], strict=True)
    }
    assert shown == controller.session.results.boxes(frame), frame
    assert set(layer.features["frame"]) == {frame}


def saved_rows(layer) -> int:
    """The rows *Save Layers* writes for ``layer``, as napari calls the writer."""
    from napari_sam2_track._writer import write_boxes_csv

    data, attributes, _ = layer.as_layer_data_tuple()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "boxes.csv"
        write_boxes_csv(str(path), data, attributes)
        return len(path.read_text().splitlines()) - 1


def measure(n_frames: int, n_objects: int) -> tuple[float, float, float, float]:
    import napari

    from napari_sam2_track.controller import TrackerController

    frames, session = tracked_session(n_frames, n_objects)
    viewer = napari.Viewer(show=False)
    layer = viewer.add_image(frames, name="video")
    try:
        controller = TrackerController(viewer, layer, session)
        middle = n_frames // 2
        viewer.dims.set_current_step(0, middle)
        full = median_time(lambda _: controller.rebuild_boxes())
        check_shown(controller)
        retracked = [middle - 1, middle, middle + 1]

        def retrack(run: int) -> None:  # the worker's part, not timed
            for frame in retracked:
                track(session, frame, n_objects, shift=run + 1)

        def update(_run: int) -> None:
            controller.refresh_frames(retracked)
            controller.update_boxes()

        update_time = median_time(update, before=retrack)
        check_shown(controller)
        step = median_time(lambda run: viewer.dims.set_current_step(0, middle + 2 + run))
        check_shown(controller)
        start = time.perf_counter()
        assert saved_rows(controller.boxes_layer) == n_frames * n_objects
        save = time.perf_counter() - start
    finally:
        viewer.close()
    return full, update_time, step, save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--objects", type=int, default=3)
    args = parser.parse_args()
    header = ("frames", "boxes", "full rebuild", "update 3 frames", "step", "save layers")
    print(" ".join(f"{name:>{width}}" for name, width in zip(header, WIDTHS, strict=True)))
    for n_frames in args.frames:
        full, update, step, save = measure(n_frames, args.objects)
        times = (f"{t * 1e3:.1f}ms" for t in (full, update, step))
        row = (str(n_frames), str(n_frames * args.objects), *times, f"{save:.2f}s")
        print(" ".join(f"{cell:>{width}}" for cell, width in zip(row, WIDTHS, strict=True)))


if __name__ == "__main__":
    main()
