"""Timeline and object table figures: what the viewer's thread spends per tracked frame.

    xvfb-run -a python benchmarks/timeline.py [--frames 10000] [--objects 20]

A video of N frames with every object masked on every frame: it times taking in one
newly tracked frame's states, repainting the timeline (1,600 pixels wide) after it,
refreshing the object table's counts, and a full build of the states (which runs in a
worker, off the viewer's thread). Needs a display (Xvfb headless); runs no SAM 2.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def timed(action, repeats: int = 20) -> float:
    """Median seconds of ``action()``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    from qtpy.QtWidgets import QApplication

    from napari_sam2_track.object_table import ObjectRow, ObjectTable
    from napari_sam2_track.prompts import PromptSet
    from napari_sam2_track.results import ObjectMask, TrackResults
    from napari_sam2_track.timeline_view import TimelineRow, TimelineView
    from napari_sam2_track.track_states import TrackStates

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--objects", type=int, default=20)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    objects = range(1, args.objects + 1)

    mask = np.zeros((48, 64), bool)
    mask[10:20, 10:30] = True
    entries = [ObjectMask.from_mask(mask, score) for score in (0.9, 0.3)]
    results, prompts = TrackResults(args.frames, 48, 64), PromptSet()
    for frame in range(args.frames):
        for obj_id in objects:
            results.set(frame, obj_id, entries[(frame * obj_id) % 97 == 0])

    start = time.perf_counter()
    states = TrackStates.build(results, [], objects)
    build = time.perf_counter() - start

    timeline = TimelineView(states)
    rows = [TimelineRow(o, f"object {o}", (0.5, 0.5, 1.0, 1.0)) for o in objects]
    timeline.set_rows(rows)
    timeline.resize(1600, timeline.height())
    timeline.show()
    table = ObjectTable()
    table.show()
    app.processEvents()

    frame = [args.frames // 2]

    def take_in_a_frame():
        frame[0] += 1
        states.update(results, prompts, [frame[0]])

    def repaint():
        timeline.states_changed()
        timeline.repaint()

    def refresh_table():
        table_rows = [
            ObjectRow(
                o,
                f"object {o}",
                "",
                (0.5, 0.5, 1.0, 1.0),
                True,
                states.frames_with_mask(o),
                states.prompted_frames(o),
            )
            for o in objects
        ]
        table.show_objects(table_rows, 1)

    update = timed(take_in_a_frame)
    paint = timed(repaint)
    counts = timed(refresh_table)
    print(f"{'frames':>7} {'objects':>7} {'frame in':>9} {'repaint':>8} {'table':>7} {'build':>7}")
    print(
        f"{args.frames:7d} {args.objects:7d} {update * 1e3:7.2f}ms {paint * 1e3:6.2f}ms "
        f"{counts * 1e3:5.2f}ms {build:6.2f}s"
    )
    timeline.close()
    table.close()


if __name__ == "__main__":
    main()
