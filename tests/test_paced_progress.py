"""Counts reach napari's progress bar at most every interval, and the last one always."""

from __future__ import annotations

from napari.utils import progress

from napari_sam2_track.paced_progress import PacedProgress


def test_counts_reach_the_bar_at_most_every_interval_and_the_last_on_close():
    now = [0.0]
    bar = progress(total=0)
    paced = PacedProgress(bar, interval=0.1, clock=lambda: now[0])
    paced.set_total(50)
    seen = []
    for _ in range(50):
        now[0] += 0.03  # a frame every 30 ms
        paced.advance()
        seen.append(bar.n)
    assert bar.total == 50
    assert seen[:8] == [1, 1, 1, 1, 5, 5, 5, 5]  # told at 30 ms, then at 150 ms
    assert len(set(seen)) == 13 and seen[-1] < 50
    paced.close()
    assert bar.n == 50


def test_absolute_counts_with_a_total_that_changes():
    now = [0.0]
    bar = progress(total=0)
    paced = PacedProgress(bar, interval=1.0, clock=lambda: now[0])
    paced.show(3, 10)
    assert (bar.n, bar.total) == (3, 10)
    now[0] = 0.5
    paced.show(7, 12)
    assert (bar.n, bar.total) == (3, 12)  # the total at once, the count later
    now[0] = 1.5
    paced.show(9, 12)
    assert bar.n == 9
    paced.close()
