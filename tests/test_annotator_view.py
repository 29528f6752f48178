"""The timeline, the object table and the grouped controls, in a real napari viewer."""

from __future__ import annotations

import contextlib
import csv

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

import test_workflow
from napari_sam2_track.layers import BOXES_LAYER
from napari_sam2_track.object_table import CLASS, NAME, VISIBLE
from napari_sam2_track.prompt_queue import FrameTracked
from napari_sam2_track.timeline_view import RULER_HEIGHT, STATE_COLORS
from napari_sam2_track.track_states import FrameState
from test_workflow import (
    N_FRAMES,
    PLUGIN,
    WAIT_MS,
    propagate,
    start,
    table_row,
    wait_previews,
)

# The annotation loop's fixtures: caches in a temporary folder, a short synthetic video.
autosave_in_tmp = test_workflow.autosave_in_tmp
video_file = test_workflow.video_file


def expected_states(c, obj_id: int) -> list[FrameState]:
    """An object's state on each frame, read straight from the session."""
    states = []
    for frame in range(N_FRAMES):
        entry = c.session.results.get(frame, obj_id)
        if (frame, obj_id) in c.session.prompts:
            states.append(FrameState.PROMPTED)
        elif entry is None:
            states.append(FrameState.NOT_TRACKED)
        elif entry.empty:
            states.append(FrameState.NO_MASK)
        elif entry.score < c.track_states.min_score:
            states.append(FrameState.LOW_SCORE)
        else:
            states.append(FrameState.TRACKED)
    return states


def tracking_two_objects(make_napari_viewer, qtbot, checkpoint, path):
    """Objects 1 (frame 0) and 2 (frame 2) prompted, then tracked over frames 0-5."""
    viewer = make_napari_viewer()
    widget, c = start(viewer, qtbot, checkpoint, path)
    qtbot.waitUntil(lambda: c.states_ready)
    viewer.dims.set_current_step(0, 0)
    c.add_point(60, 40)
    c.new_object()
    viewer.dims.set_current_step(0, 2)
    c.add_point(90, 120)
    wait_previews(qtbot, c)
    return viewer, widget, c


def pixel_state(timeline, frame: int, row: int) -> int:
    """The state whose colour the timeline paints for ``frame`` in ``row``."""
    image = timeline.grab().toImage()
    x = timeline.x_of(frame)
    color = image.pixelColor(x + 1 if frame == timeline.current_frame else x, row)
    rgba = (color.red(), color.green(), color.blue(), color.alpha())
    return [tuple(c) for c in STATE_COLORS.tolist()].index(rgba)


def test_the_timeline_shows_each_frames_state_live_and_a_click_jumps_there(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer, widget, c = tracking_two_objects(
        make_napari_viewer, qtbot, random_checkpoint, video_file
    )
    timeline = widget.timeline
    assert viewer.window.dock_widgets["SAM 2 timeline"] is timeline
    seen_live = []

    def check_live(message):
        if isinstance(message, FrameTracked):
            seen_live.append(timeline._states.states(1)[message.frame] != 0)

    c.propagation_progressed.connect(check_live)
    propagate(qtbot, widget, limit=True, first_frame=0, last_frame=5)
    assert seen_live and all(seen_live)
    for obj_id in (1, 2):
        assert c.track_states.states(obj_id).tolist() == expected_states(c, obj_id)
    row_y = {1: RULER_HEIGHT + 7, 2: RULER_HEIGHT + 14 + 7}
    timeline.resize(160 + 16 * 40, timeline.height())  # 40 pixels a frame
    for frame in (0, 2, 3, 9):
        for obj_id in (1, 2):
            assert pixel_state(timeline, frame, row_y[obj_id]) == expected_states(c, obj_id)[frame]

    # Painting over a frame shows as painted.
    labels = c.masks_layer.data[4]
    labels[:10, :10] = 1
    c.masks_layer.data[4] = labels
    c.fold_paint()
    assert c.track_states.states(1)[4] == FrameState.PAINTED
    assert pixel_state(timeline, 4, row_y[1]) == FrameState.PAINTED

    # A click on a frame's column jumps there; on a row's name, selects its object.
    with qtbot.waitSignal(viewer.dims.events.current_step):
        qtbot.mouseClick(
            timeline, Qt.MouseButton.LeftButton, pos=QPoint(timeline.x_of(11), row_y[2])
        )
    assert viewer.dims.current_step[0] == 11
    assert "frame 11: not tracked yet" in timeline.describe(QPoint(timeline.x_of(11), row_y[2]))
    qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton, pos=QPoint(20, row_y[1]))
    assert c.current_object == 1 and widget.objects.current_id() == 1

    # The threshold of the review controls is the timeline's too.
    widget.min_score.value = 1.0
    tracked = [f for f in range(1, 6) if c.session.results.get(f, 1).area and f != 4]
    assert all(c.track_states.states(1)[f] == FrameState.LOW_SCORE for f in tracked)


def test_the_object_table_selects_renames_hides_and_deletes_by_keyboard(
    make_napari_viewer, qtbot, video_file, random_checkpoint, tmp_path
):
    viewer, widget, c = tracking_two_objects(
        make_napari_viewer, qtbot, random_checkpoint, video_file
    )
    propagate(qtbot, widget, limit=True, first_frame=0, last_frame=3)
    qtbot.waitUntil(lambda: widget.objects.item(0, 4).text() != "0")
    table = widget.objects
    table.setFocus()
    for obj_id in (1, 2):
        row = table_row(widget, obj_id)
        assert int(table.item(row, 4).text()) == c.track_states.frames_with_mask(obj_id)
        assert table.item(row, 5).text() == "1"

    # Up and down select the object.
    table.selectRow(table_row(widget, 2))
    qtbot.keyClick(table, Qt.Key.Key_Up)
    assert c.current_object == 1
    qtbot.keyClick(table, Qt.Key.Key_Down)
    assert c.current_object == 2

    # Rename and set the class in place.
    table.item(table_row(widget, 2), NAME).setText("lid")
    table.item(table_row(widget, 2), CLASS).setText("cup part")
    info = c.annotation_model.registry[2]
    assert (info.name, info.category) == ("lid", "cup part")
    assert set(c.boxes_layer.features["name"][c.boxes_layer.features["obj_id"] == 2]) <= {"lid"}

    # H hides the object's mask, points and boxes; H again shows them.
    viewer.dims.set_current_step(0, 2)
    qtbot.keyClick(table, Qt.Key.Key_H)
    assert c.hidden == {2}
    assert table.item(table_row(widget, 2), VISIBLE).checkState() == Qt.CheckState.Unchecked
    assert np.asarray(c.masks_layer.get_color(2))[3] == 0
    assert np.asarray(c.masks_layer.get_color(1))[3] > 0
    assert np.allclose(c.object_color(2)[3], 1)  # its own colour stays for when it shows
    obj_ids = c.prompts_layer.features["obj_id"].to_numpy()
    assert (
        not c.prompts_layer.shown[obj_ids == 2].any() and c.prompts_layer.shown[obj_ids == 1].all()
    )
    assert 2 not in set(viewer.layers[BOXES_LAYER].features["obj_id"])
    viewer.layers.selection = {c.boxes_layer}
    viewer.layers.save(str(tmp_path / "boxes.csv"), selected=True, plugin=PLUGIN)
    with open(tmp_path / "boxes.csv") as handle:
        saved = list(csv.DictReader(handle))
    assert {int(row["obj_id"]) for row in saved} == {1, 2}  # hidden, not gone
    for row in saved:  # names, classes and scores as the session export writes them
        frame, obj_id = int(row["frame"]), int(row["obj_id"])
        assert float(row["score"]) == round(c.session.results.get(frame, obj_id).score, 4)
        expected = ("lid", "cup part") if obj_id == 2 else ("object 1", "object")
        assert (row["name"], row["class"]) == expected
    c.new_object()  # a new object shows in its own colour while another is hidden
    assert np.allclose(c.masks_layer.get_color(3), c.object_color(3))
    c.delete_object(3)
    table.selectRow(table_row(widget, 2))
    table.item(table_row(widget, 2), VISIBLE).setCheckState(Qt.CheckState.Checked)
    assert c.hidden == set()
    assert np.allclose(c.masks_layer.get_color(2), c.object_color(2))
    assert c.prompts_layer.shown.all()

    # Delete removes the selected object, hidden or not.
    qtbot.keyClick(table, Qt.Key.Key_H)
    assert c.hidden == {2}
    qtbot.keyClick(table, Qt.Key.Key_Delete)
    assert sorted(c.annotation_model.registry) == [1] and c.hidden == set()
    assert c.session.results.object_ids() == [1]
    assert table.rowCount() == 1 and table.current_id() == 1


def test_controls_come_in_collapsible_groups_with_shortcuts_in_tooltips(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer = make_napari_viewer()
    widget, c = start(viewer, qtbot, random_checkpoint, video_file)
    assert list(widget.sections) == [
        "Video and model",
        "Objects and prompts",
        "Propagation",
        "Review",
        "Session and export",
        "Help",
    ]
    assert not widget.sections["Video and model"].isExpanded()  # done with once tracking
    assert widget.sections["Propagation"].isExpanded()
    widget.sections["Propagation"].collapse(animate=False)
    assert not widget.sections["Propagation"].isExpanded()
    assert "Shift+P" in widget.propagate.tooltip and "]" in widget.next_problem.tooltip

    # The keys the tooltips name work on the prompts layer.
    bindings = {str(key): action for key, action in c.prompts_layer.keymap.items()}
    viewer.dims.set_current_step(0, 0)
    c.add_point(60, 40)
    wait_previews(qtbot, c)
    with qtbot.waitSignal(c.propagation_finished, timeout=120_000):
        bindings["Shift+P"](c.prompts_layer)
    assert c.session.results.frames_of(1) == list(range(N_FRAMES))


def dock_of(widget):
    """The napari dock a widget sits in."""
    from qtpy.QtWidgets import QDockWidget

    dock = widget.parentWidget()
    while not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    return dock


@pytest.mark.parametrize("timeline_first", [False, True])
def test_closing_the_tracker_dock_keeps_the_work_and_closes_the_timeline(
    make_napari_viewer, qtbot, video_file, random_checkpoint, timeline_first
):
    from napari_sam2_track.store import load_session

    viewer, widget, c = tracking_two_objects(
        make_napari_viewer, qtbot, random_checkpoint, video_file
    )
    timeline = widget.timeline
    if timeline_first:
        with qtbot.waitSignal(timeline.destroyed):
            dock_of(timeline).destroyOnClose()
        assert widget.timeline is None
    # What the dock's close button does; the timeline goes with it, if still there.
    with contextlib.ExitStack() as waits:
        waits.enter_context(qtbot.waitSignal(c.autosaved, timeout=WAIT_MS))
        if not timeline_first:
            waits.enter_context(qtbot.waitSignal(timeline.destroyed))
        dock_of(widget.native).destroyOnClose()
    assert "SAM 2 timeline" not in viewer.window.dock_widgets and widget.timeline is None
    saved = load_session(c.annotation_model.autosave_target())
    assert sorted(saved.prompts.frames()) == [0, 2]
    bound = {str(key) for key in c.prompts_layer.keymap}
    assert "Shift+P" not in bound and "]" not in bound  # the dock's keys went with it
    c.prefetcher.resume()  # as the end of a preview would
    assert c.prefetcher.closed and not c.prefetcher.running
    # The layers stay, as plain layers: a point or a step asks nothing of SAM 2.
    shown = c.boxes.shown
    c.prompts_layer.add([[1, 50, 50]])
    viewer.dims.set_current_step(0, 5)
    assert not c.queue and not c.previewing and c.session.prompts.frames() == [0, 2]
    assert c.boxes.shown == shown and len(c.prompts_layer.data) == 3


def test_closing_the_tracker_dock_while_propagating_stops_and_keeps_what_was_tracked(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    from napari_sam2_track.store import load_session

    _, widget, c = tracking_two_objects(make_napari_viewer, qtbot, random_checkpoint, video_file)

    def close_at_the_first_frame(message):
        if isinstance(message, FrameTracked) and widget.timeline is not None:
            dock_of(widget.native).destroyOnClose()

    c.propagation_progressed.connect(close_at_the_first_frame)
    with qtbot.waitSignal(c.propagation_finished, timeout=WAIT_MS):
        widget.run_propagation()
    tracked = c.session.results.frames()
    assert 2 < len(tracked) < N_FRAMES  # stopped after the frames in flight
    target = c.annotation_model.autosave_target()
    qtbot.waitUntil(lambda: load_session(target).results.frames() == tracked, timeout=WAIT_MS)
