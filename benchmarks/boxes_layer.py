"""Boxes layer figures: how long the viewer's thread spends keeping the boxes up to date.

    python benchmarks/boxes_layer.py [--frames 1000 3400] [--objects 3]

For videos of N frames with every object masked on every frame (so N x objects boxes),
it prints the time of a full rebuild of the boxes layer and of the update that follows
a few newly propagated frames (what the viewer's thread does a few times a second while
propagating). The update still grows with the number of boxes (napari's Shapes layer
re-indexes on every add and remove), but far more slowly than a rebuild. Needs a display
(Xvfb headless); uses the bundled model's architecture but runs no SAM 2 compute.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def measure(n_frames: int, n_objects: int) -> tuple[float, float]:
    import napari

    from napari_sam2_track import models
    from napari_sam2_track.controller import TrackerController
    from napari_sam2_track.engine import TrackingSession
    from napari_sam2_track.sam2_backend import build_model

    height, width = 48, 64
    frames = np.zeros((n_frames, height, width, 3), np.uint8)
    session = TrackingSession(frames, build_model(models.SYNTHETIC_MODEL, device="cpu"))
    for frame in range(n_frames):
        for obj_id in range(1, n_objects + 1):
            mask = np.zeros((height, width), bool)
            mask[obj_id * 4 : obj_id * 4 + 10, frame % 40 : frame % 40 + 12] = True
            session.results.set(frame, obj_id, mask)
    viewer = napari.Viewer(show=False)
    layer = viewer.add_image(frames, name="video")
    try:
        controller = TrackerController(viewer, layer, session)
        start = time.perf_counter()
        controller.rebuild_boxes()
        full = time.perf_counter() - start
        assert len(controller.boxes_layer.data) == n_frames * n_objects
        start = time.perf_counter()
        controller.refresh_frames([n_frames // 2 + i for i in range(3)])
        controller.update_boxes()
        update = time.perf_counter() - start
        assert len(controller.boxes_layer.data) == n_frames * n_objects
    finally:
        viewer.close()
    return full, update


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 3400])
    parser.add_argument("--objects", type=int, default=3)
    args = parser.parse_args()
    print(f"{'frames':>7} {'boxes':>7} {'full rebuild':>13} {'update 3 frames':>16}")
    for n_frames in args.frames:
        full, update = measure(n_frames, args.objects)
        print(f"{n_frames:7d} {n_frames * args.objects:7d} {full:12.2f}s {update:15.3f}s")


if __name__ == "__main__":
    main()
