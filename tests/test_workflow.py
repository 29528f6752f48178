"""The annotation loop in a real napari viewer with a real (random-weight) SAM 2.

Click, preview, propagate, add an object mid-video, correct, cancel, paint, review,
save, close, restore and continue.
"""

from __future__ import annotations

import csv
import gc
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from napari.utils._proxies import ReadOnlyWrapper
from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

from napari_sam2_track import models
from napari_sam2_track.boxes import box_edges, mask_to_box
from napari_sam2_track.layers import (
    BOX_PROMPTS_LAYER,
    BOXES_LAYER,
    MASKS_LAYER,
    PROMPTS_LAYER,
    corners_to_box,
)
from napari_sam2_track.object_table import CLASS, NAME
from napari_sam2_track.paced_progress import PacedProgress
from napari_sam2_track.prompt_queue import FrameTracked
from napari_sam2_track.prompts import NEGATIVE
from napari_sam2_track.results import TrackResults
from napari_sam2_track.synthetic import make_synthetic_video

from conftest import write_video
from synthetic_eval import deepest_point
from synthetic_eval import mask_iou as iou

PLUGIN = "napari-sam2-track"
N_FRAMES = 16
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
WAIT_MS = 120_000
# In the sample (make_synthetic_video's defaults), shape 2 is in plain sight on these frames.
SAMPLE_SHAPE, SAMPLE_FRAMES = 2, 12


@pytest.fixture(autouse=True)
def autosave_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_TRACK_AUTOSAVE", str(tmp_path / "autosave"))
    # No official checkpoint cached, as on a fresh or offline machine.
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "checkpoints"))


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    video = make_synthetic_video(n_frames=N_FRAMES, height=120, width=160, n_objects=2)
    return write_video(tmp_path_factory.mktemp("video") / "shapes.mp4", video.frames)


def start(viewer, qtbot, checkpoint, path=None, **settings):
    """Dock the widget and start tracking the newest video layer: with ``checkpoint``
    on SAM 2.1 tiny at 128 px, without one on the model the widget offers; ``settings``
    are values of the widget's controls, by name."""
    if path is not None:
        viewer.open(str(path), plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "SAM 2 Tracker")
    if checkpoint is not None:
        widget.model.value = models.DEFAULT_MODEL
        widget.checkpoint.value = checkpoint
        widget.image_size.value = 128
    widget.device.value = "cpu"
    for name, value in settings.items():
        getattr(widget, name).value = value
    widget.start_tracking()
    qtbot.waitUntil(lambda: widget.controller is not None, timeout=WAIT_MS)
    return widget, widget.controller


def start_with_a_click(make_napari_viewer, qtbot, checkpoint, path):
    """A new viewer tracking ``path``, with one point on object 1 on frame 0, previewed."""
    viewer = make_napari_viewer()
    widget, controller = start(viewer, qtbot, checkpoint, path)
    viewer.dims.set_current_step(0, 0)
    controller.add_point(60, 40)
    wait_previews(qtbot, controller)
    return viewer, widget, controller


def save(qtbot, widget):
    """Click Save and wait for its worker: the folder saved in, or None."""
    with qtbot.waitSignal(widget.session_saved, timeout=WAIT_MS) as saved:
        widget.save.clicked()
    return saved.args[0]


def wait_previews(qtbot, controller):
    qtbot.waitUntil(lambda: not controller.previewing and not controller.queue, timeout=WAIT_MS)


def propagate(qtbot, widget, **options):
    for name, value in options.items():
        getattr(widget, name).value = value
    return run_propagation(qtbot, widget)


def run_propagation(qtbot, widget):
    """Propagate from the widget until the viewer has taken in all the worker yielded;
    the wait is armed before the worker starts, so a quick run cannot slip past it."""
    with qtbot.waitSignal(widget.controller.propagation_finished, timeout=WAIT_MS):
        worker = widget.run_propagation()
        assert worker is not None
    assert widget.controller.propagation_worker is None
    return worker


def table_row(widget, obj_id: int) -> int:
    """The object table's row of an object."""
    table = widget.objects
    return [table.obj_id(row) for row in range(table.rowCount())].index(obj_id)


def choose_object(widget, obj_id: int) -> None:
    """Select an object in the table, as a click on its row does."""
    widget.objects.selectRow(table_row(widget, obj_id))


def rles(controller, frames, obj_id):
    results = controller.session.results
    return {f: results.get(f, obj_id).rle["counts"] for f in frames}


def assert_layers_match_results(controller):
    results = controller.session.results
    for frame in range(N_FRAMES):
        np.testing.assert_array_equal(controller.masks_layer.data[frame], results.labels(frame))
    assert_shown_boxes_match_results(controller)  # as the last change left them
    expected = {(f, o): b for f in range(N_FRAMES) for o, b in results.boxes(f).items()}
    assert drawn_boxes(controller) == expected


def shown_boxes(controller) -> dict[tuple[int, int], tuple]:
    """The boxes layer's boxes by (frame, object): the boxes of the frame on screen."""
    boxes = controller.boxes_layer
    keys = zip(boxes.features["frame"], boxes.features["obj_id"], strict=True)
    shown = {
        (int(f), int(o)): corners_to_box(rect)
        for rect, (f, o) in zip(boxes.data, keys, strict=True)
    }
    assert {f for f, _ in shown} <= {controller.current_frame()}
    assert {int(rect[0, 0]) for rect in boxes.data} <= {controller.current_frame()}
    return shown


def assert_shown_boxes_match_results(controller):
    """The layer holds the boxes of the frame on screen, named as their objects are."""
    frame, boxes = controller.current_frame(), controller.boxes_layer
    expected = {(frame, o): b for o, b in controller.session.results.boxes(frame).items()}
    assert shown_boxes(controller) == expected
    assert set(boxes.shape_type) <= {"rectangle"}
    registry = controller.annotation_model.registry
    names = [registry[o].name for o in boxes.features["obj_id"]]
    assert list(boxes.features["name"]) == names


def drawn_boxes(controller) -> dict[tuple[int, int], tuple]:
    """The boxes the layer shows on every frame, by (frame, object), stepping the viewer
    through the frames and back."""
    dims, drawn = controller.viewer.dims, {}
    here = dims.current_step[0]
    for frame in range(controller.session.n_frames):
        dims.set_current_step(0, frame)
        drawn.update(shown_boxes(controller))
    dims.set_current_step(0, here)
    return drawn


@dataclass
class Click:
    type: str
    position: tuple
    pos: np.ndarray = field(default_factory=lambda: np.array([10.0, 10.0]))
    button: int = 1
    modifiers: list = field(default_factory=list)
    is_dragging: bool = False
    dims_displayed: list = field(default_factory=lambda: [1, 2])
    view_direction: None = None
    up_direction: None = None


def click(layer, position, **kwargs):
    for kind in ("mouse_press", "mouse_release"):
        event = ReadOnlyWrapper(Click(kind, position, **kwargs), exceptions=("handled",))
        (mouse_press_callbacks if kind == "mouse_press" else mouse_release_callbacks)(layer, event)


def test_seed_workflow_end_to_end(
    make_napari_viewer, qtbot, video_file, random_checkpoint, tmp_path
):
    viewer = make_napari_viewer()
    widget, c = start(viewer, qtbot, random_checkpoint, video_file)
    assert {PROMPTS_LAYER, MASKS_LAYER, BOXES_LAYER} <= {layer.name for layer in viewer.layers}
    session = c.session

    # A positive and a negative click for object 1 on frame 0: preview on frame 0 only.
    viewer.dims.set_current_step(0, 0)
    viewer.layers.selection.active = c.prompts_layer
    c.prompts_layer.mode = "pan_zoom"
    click(c.prompts_layer, (0, 60, 40))
    click(c.prompts_layer, (0, 10, 150), button=2)
    wait_previews(qtbot, c)
    coords, labels = session.tracker.point_prompt(0, 1)
    assert labels.tolist() == [1, NEGATIVE]
    np.testing.assert_allclose(coords[:, 0] * 160 / 128, [40, 150], rtol=1e-5)
    assert session.results.frames() == [0]

    propagate(qtbot, widget)
    assert session.results.frames() == list(range(N_FRAMES))
    assert_layers_match_results(c)

    # A second object added mid-video is tracked from its first prompt on.
    before = rles(c, range(8), 1)
    widget.new_object.clicked()
    assert c.current_object == 2
    viewer.dims.set_current_step(0, 8)
    c.add_point(90, 120)
    wait_previews(qtbot, c)
    propagate(qtbot, widget)
    assert session.results.frames_of(2) == list(range(8, N_FRAMES))
    assert rles(c, range(8), 1) == before

    # A correction on frame 12 re-tracks frames 12.. and leaves earlier ones alone.
    choose_object(widget, 1)
    assert c.current_object == 1
    before = {o: rles(c, range(12), o) for o in (1,)}
    viewer.dims.set_current_step(0, 12)
    c.add_point(30, 30, NEGATIVE)
    wait_previews(qtbot, c)
    assert 12 in session.pending_frames
    propagate(qtbot, widget)
    assert rles(c, range(12), 1) == before[1]
    assert session.pending_frames == []
    assert_layers_match_results(c)
    widget.objects.item(table_row(widget, 1), NAME).setText("red cup")
    widget.objects.item(table_row(widget, 1), CLASS).setText("cup")
    registry = c.annotation_model.registry
    assert registry[1].name == "red cup" and registry[1].category == "cup"
    boxes = c.boxes_layer.features  # the frame on screen takes the name at once
    assert set(boxes["name"][boxes["obj_id"] == 1]) == {"red cup"}
    assert set(boxes["name"][boxes["obj_id"] == 2]) == {"object 2"}
    viewer.dims.set_current_step(0, 9)  # and other frames when shown
    assert_shown_boxes_match_results(c)
    assert set(c.boxes_layer.features["name"]) == {"red cup", "object 2"}
    assert widget.objects.item(table_row(widget, 1), NAME).text() == "red cup"

    ARTIFACTS.mkdir(exist_ok=True)
    viewer.window.resize(1400, 900)
    viewer.screenshot(str(ARTIFACTS / "workflow.png"), canvas_only=False, flash=False)

    # Save, close, open the session folder again, and go on where it stopped.
    widget.folder.value = tmp_path / "shapes.session"
    assert save(qtbot, widget) == tmp_path / "shapes.session"
    saved = {o: rles(c, session.results.frames_of(o), o) for o in (1, 2)}
    names = dict(c.annotation_model.registry)
    viewer.close()

    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "shapes.session"), plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["shapes", PROMPTS_LAYER, MASKS_LAYER, BOXES_LAYER]
    assert len(layers[1].data) == 4
    widget, c = start(viewer, qtbot, random_checkpoint)
    assert c.annotation_model.registry == names
    assert {o: rles(c, c.session.results.frames_of(o), o) for o in (1, 2)} == saved
    assert len(c.prompts_layer.data) == 4
    assert sorted(c.session.tracker.object_ids) == [1, 2]
    wait_previews(qtbot, c)
    assert c.session.pending_frames == []
    viewer.dims.set_current_step(0, 14)
    c.add_point(60, 100)
    wait_previews(qtbot, c)
    assert c.session.pending_frames == [14]
    propagate(qtbot, widget)
    assert rles(c, range(14), 1) == {f: saved[1][f] for f in range(14)}
    assert_layers_match_results(c)


def test_cancel_stops_within_a_frame_and_keeps_what_was_done(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    _, widget, c = start_with_a_click(make_napari_viewer, qtbot, random_checkpoint, video_file)
    produced, enabled, done_at_cancel = [], [], []

    def on_frame(message):
        if isinstance(message, FrameTracked):
            produced.append(message.frame)
            if len(produced) == 3:
                # Frames already encoded track fast, so the worker may be ahead of the
                # viewer: count what it had done when the person clicked.
                done_at_cancel.append(len(c.session.results.frames()))
                widget.cancel.clicked()

    c.propagation_progressed.connect(on_frame)
    with qtbot.waitSignal(c.propagation_finished, timeout=WAIT_MS):
        widget.run_propagation()
        enabled.append((widget.cancel.enabled, widget.propagate.enabled))
    assert enabled == [(True, False)]
    assert 3 <= len(produced) <= done_at_cancel[0] + 1 < N_FRAMES
    assert c.session.results.frames() == sorted(produced)
    assert widget.propagate.enabled
    propagate(qtbot, widget)  # the session goes on
    assert c.session.results.frames() == list(range(N_FRAMES))


def test_a_propagation_without_prompts_says_why_in_one_sentence(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    from napari.utils.notifications import NotificationSeverity, notification_manager

    viewer = make_napari_viewer()
    widget, _ = start(viewer, qtbot, random_checkpoint, video_file)
    warnings: list[str] = []

    def record(notification):  # warnings and errors, a traceback's among them
        if notification.severity >= NotificationSeverity.WARNING:
            warnings.append(notification.message)

    notification_manager.notification_ready.connect(record)
    try:
        run_propagation(qtbot, widget)
    finally:
        notification_manager.notification_ready.disconnect(record)
    assert warnings == ["There is nothing to propagate: add a prompt first."]
    assert widget.propagate.enabled


def test_viewer_stays_responsive_while_propagating(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    from qtpy.QtCore import QElapsedTimer, QTimer

    viewer = make_napari_viewer()
    widget, c = start(viewer, qtbot, random_checkpoint, video_file)
    c.add_point(60, 40)
    wait_previews(qtbot, c)
    clock, gaps, last = QElapsedTimer(), [], [0]
    clock.start()

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    with qtbot.waitSignal(c.propagation_finished, timeout=WAIT_MS):
        widget.run_propagation()
        last[0] = clock.elapsed()
        timer.start()
    timer.stop()
    assert len(gaps) > 20
    assert max(gaps) < 100, f"the event loop stalled for {max(gaps)} ms"


def shown_labels(viewer) -> np.ndarray:
    """The label image the masks layer shows now."""
    return np.asarray(viewer.layers[MASKS_LAYER]._slice.image.raw)


def test_the_frames_the_worker_drew_are_the_ones_the_viewer_shows(
    make_napari_viewer, qtbot, video_file, random_checkpoint, monkeypatch
):
    viewer, widget, c = start_with_a_click(
        make_napari_viewer, qtbot, random_checkpoint, video_file
    )
    labels, rendered_here = TrackResults.labels, []

    def labels_noting_the_thread(results, frame, dtype=np.uint32):
        if threading.current_thread() is threading.main_thread():
            rendered_here.append(frame)
        return labels(results, frame, dtype)

    monkeypatch.setattr(TrackResults, "labels", labels_noting_the_thread)
    shown_wrong, drawn = [], {}

    def on_frame(message):
        if not isinstance(message, FrameTracked):
            return
        shown = shown_labels(viewer)
        expected = labels(c.session.results, message.frame, shown.dtype)
        if c.current_frame() != message.frame or not np.array_equal(shown, expected):
            shown_wrong.append(message.frame)
        if message.labels is not None:
            drawn[message.frame] = message.labels.take() is None  # the viewer took it in

    c.propagation_progressed.connect(on_frame)
    run_propagation(qtbot, widget)
    assert shown_wrong == []
    assert drawn and all(drawn.values()), drawn
    assert not set(drawn) & set(rendered_here), "a frame drawn in the worker was drawn again"
    assert c.current_frame() == N_FRAMES - 1  # following, the viewer ends on the last frame


def test_following_never_steps_back_to_a_frame_when_later_ones_arrive_meanwhile(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer = make_napari_viewer()
    _, c = start(viewer, qtbot, random_checkpoint, video_file)

    class Bar:
        """Counting runs queued events, as napari's progress bar does: frame 3 here."""

        n = total = 0

        def __init__(self):
            self.queued = [FrameTracked(3)]

        def update(self, count):
            self.n += count
            while self.queued:
                c._on_propagated(self.queued.pop(), paced)

    paced = PacedProgress(Bar())
    c._on_propagated(FrameTracked(2), paced)
    assert c.current_frame() == 3


def test_new_results_slice_the_masks_again_only_for_the_frame_on_screen(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer, widget, c = start_with_a_click(
        make_napari_viewer, qtbot, random_checkpoint, video_file
    )
    viewer.dims.set_current_step(0, 3)
    sliced = []
    c.masks_layer.events.set_data.connect(lambda _event: sliced.append(c.current_frame()))
    c.refresh_frames([5])  # off screen: napari slices it when it is shown
    assert sliced == []
    checkerboard = np.indices((120, 160)).sum(axis=0) % 2 == 1  # no mask SAM 2 makes
    c.session.results.set(3, 1, checkerboard)
    c.refresh_frames([3])
    assert sliced == [3]
    np.testing.assert_array_equal(shown_labels(viewer), c.session.results.labels(3))
    # Without following, the frame on screen still shows what SAM 2 makes of it.
    propagate(qtbot, widget, follow=False, limit=True, first_frame=0, last_frame=7, to_end=True)
    assert c.current_frame() == 3
    np.testing.assert_array_equal(shown_labels(viewer), c.session.results.labels(3))
    assert not np.array_equal(shown_labels(viewer) == 1, checkerboard)


def test_points_from_anywhere_count_and_removing_them_removes_the_prompt(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer = make_napari_viewer()
    _, c = start(viewer, qtbot, random_checkpoint, video_file)
    layer = c.prompts_layer
    # As a script or a pasted CSV would: set the data and features directly.
    layer.data = np.array([[3, 60, 40], [3, 70, 50], [5, 20, 20]], float)
    layer.features = {"label": [1, 0, 1], "obj_id": [1, 1, 2]}
    wait_previews(qtbot, c)
    assert c.session.prompts.frames() == [3, 5]
    assert c.session.prompts.get(3, 1).labels.tolist() == [1, 0]
    assert sorted(c.session.results.frames()) == [3, 5]
    layer.selected_data = {2}
    layer.remove_selected()
    wait_previews(qtbot, c)
    assert c.session.prompts.frames() == [3]
    assert c.session.results.get(5, 2) is None
    np.testing.assert_array_equal(c.masks_layer.data[5], 0)


def test_paint_edits_become_the_truth_and_can_prompt_sam2(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer, widget, c = start_with_a_click(
        make_napari_viewer, qtbot, random_checkpoint, video_file
    )
    propagate(qtbot, widget, limit=True, first_frame=0, last_frame=4)
    labels = c.masks_layer
    viewer.dims.set_current_step(0, 2)
    labels.brush_size = 5
    labels.paint((2, 100, 150), 1)  # a stroke far from anything SAM 2 found
    qtbot.waitUntil(lambda: c.session.results.get(2, 1).mask[100, 150], timeout=WAIT_MS)
    box = c.session.results.get(2, 1).box
    x, y, w, h = box
    assert x + w - 1 >= 150 and y + h - 1 >= 100
    qtbot.waitUntil(lambda: shown_boxes(c).get((2, 1)) == box, timeout=WAIT_MS)
    viewer.dims.set_current_step(0, 10)  # a frame SAM 2 has not reached: a new box
    labels.paint((10, 100, 150), 1)
    qtbot.waitUntil(lambda: c.session.results.get(10, 1) is not None, timeout=WAIT_MS)
    box = c.session.results.get(10, 1).box
    assert box[2] <= 5 and box[3] <= 5
    qtbot.waitUntil(lambda: shown_boxes(c).get((10, 1)) == box, timeout=WAIT_MS)
    labels.undo()  # as Ctrl+Z does: no paint event, yet the results must follow
    qtbot.waitUntil(lambda: c.session.results.get(10, 1).box is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: (10, 1) not in shown_boxes(c), timeout=WAIT_MS)
    labels.redo()
    qtbot.waitUntil(lambda: c.session.results.get(10, 1).box == box, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: shown_boxes(c).get((10, 1)) == box, timeout=WAIT_MS)
    viewer.dims.set_current_step(0, 2)
    widget.mask_prompt.clicked()
    wait_previews(qtbot, c)
    assert 2 in c.session.tracker.prompted_frames(1)["mask"]


def test_fill_bucket_and_polygon_edits_become_the_truth(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer, _, c = start_with_a_click(make_napari_viewer, qtbot, random_checkpoint, video_file)
    labels = c.masks_layer
    viewer.dims.set_current_step(0, 10)  # a frame SAM 2 has not reached
    labels.paint_polygon([[10, 20, 30], [10, 20, 60], [10, 40, 60], [10, 40, 30]], 1)
    qtbot.waitUntil(lambda: c.session.results.get(10, 1) is not None, timeout=WAIT_MS)
    x, y, w, h = c.session.results.get(10, 1).box
    assert (x, y) == (30, 20) and abs(w - 31) <= 1 and abs(h - 21) <= 1
    qtbot.waitUntil(lambda: shown_boxes(c).get((10, 1)) == (x, y, w, h), timeout=WAIT_MS)
    labels.fill((10, 30, 45), 0)  # the bucket, with the background label: erased
    qtbot.waitUntil(lambda: c.session.results.get(10, 1).box is None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: (10, 1) not in shown_boxes(c), timeout=WAIT_MS)
    assert not np.asarray(labels.data[10]).any()


def test_deleting_an_object_removes_its_masks_and_boxes_everywhere(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer = make_napari_viewer()
    widget, c = start(viewer, qtbot, random_checkpoint, video_file)
    viewer.dims.set_current_step(0, 0)
    c.add_point(60, 40)
    c.new_object()
    c.add_point(90, 120)
    wait_previews(qtbot, c)
    propagate(qtbot, widget, limit=True, first_frame=0, last_frame=3)
    choose_object(widget, 2)
    assert set(c.boxes_layer.features["obj_id"]) == {1, 2}
    widget.delete_object.clicked()
    assert c.session.results.object_ids() == [1]
    assert set(c.boxes_layer.features["obj_id"]) == {1}
    assert {o for _, o in drawn_boxes(c)} == {1}
    assert set(c.prompts_layer.features["obj_id"]) == {1}
    assert all(2 not in np.unique(c.masks_layer.data[f]) for f in range(4))


def test_layers_removed_by_hand_lose_nothing_and_come_back(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer, widget, c = start_with_a_click(
        make_napari_viewer, qtbot, random_checkpoint, video_file
    )
    own = [layer.name for layer in viewer.layers]
    viewer.add_image(np.zeros((N_FRAMES, 8, 8)), name="another video")

    def remove_layers(message):
        if message == FrameTracked(2):  # while SAM 2 still has frames to go
            own = (MASKS_LAYER, BOXES_LAYER, BOX_PROMPTS_LAYER, PROMPTS_LAYER)
            for name in (*own, c.video_layer.name):
                viewer.layers.remove(name)

    c.propagation_progressed.connect(remove_layers)
    run_propagation(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["another video"]
    assert c.session.results.frames() == list(range(N_FRAMES))

    widget.new_object.clicked()  # any object change brings them back, in their order
    assert [layer.name for layer in viewer.layers] == ["another video", *own]
    assert widget.video_layer.value == c.video_layer
    assert_layers_match_results(c)
    viewer.layers.remove(MASKS_LAYER)
    c.add_point(90, 120)
    wait_previews(qtbot, c)
    propagate(qtbot, widget)
    assert [layer.name for layer in viewer.layers] == ["another video", *own]
    assert c.session.results.object_ids() == [1, 2]
    assert len(c.prompts_layer.data) == 2
    assert_layers_match_results(c)


def test_review_jumps_to_frames_without_a_mask(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer = make_napari_viewer()
    widget, c = start(viewer, qtbot, random_checkpoint, video_file)
    results = c.session.results
    good = np.zeros((120, 160), bool)
    good[10:20, 10:20] = True
    for frame in range(10):
        results.set(frame, 1, good if frame != 6 else np.zeros_like(good), score=0.9)
    results.set(3, 1, good, score=0.2)
    qtbot.waitUntil(lambda: c.states_ready)
    c.refresh_frames(list(range(10)))  # as a propagation does for the frames it tracked
    viewer.dims.set_current_step(0, 0)
    widget.next_problem.clicked()
    assert viewer.dims.current_step[0] == 3
    widget.next_problem.clicked()
    assert viewer.dims.current_step[0] == 6
    widget.previous_problem.clicked()
    assert viewer.dims.current_step[0] == 3


def test_the_boxes_layer_holds_the_frame_on_screen_and_redraws_only_that(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer = make_napari_viewer()
    _, c = start(viewer, qtbot, random_checkpoint, video_file)
    c.new_object()
    results = c.session.results
    for frame in range(6):  # as a propagation leaves them: object 1 moving right
        for obj_id, row in ((1, 10), (2, 60)):
            mask = np.zeros((120, 160), bool)
            mask[row : row + 10, 10 * frame : 10 * frame + 20] = True
            results.set(frame, obj_id, mask)
    viewer.dims.set_current_step(0, 2)
    c.refresh_frames(list(range(6)))
    assert shown_boxes(c) == {(2, 1): (20, 10, 20, 10), (2, 2): (20, 60, 20, 10)}
    drawn = []
    boxes_of = c.boxes._boxes_of
    c.boxes._boxes_of = lambda frames, hidden: drawn.append(frames) or boxes_of(frames, hidden)

    c.refresh_frames([0, 4, 5])  # off screen: drawn when shown, not now
    viewer.dims.set_current_step(0, 2)  # no step: nothing to draw
    assert drawn == []
    results.set(2, 1, np.zeros((120, 160), bool))
    c.refresh_frames([1, 2, 3])  # the frame on screen is redrawn at once, once
    assert drawn == [{2}] and shown_boxes(c) == {(2, 2): (20, 60, 20, 10)}
    viewer.dims.set_current_step(0, 5)
    assert drawn == [{2}, {5}]
    assert_shown_boxes_match_results(c)
    assert shown_boxes(c)[5, 1] == (50, 10, 20, 10)
    viewer.dims.set_current_step(0, 9)  # a frame without boxes
    assert len(c.boxes_layer.data) == 0 and len(c.boxes_layer.features) == 0
    c.update_boxes()  # the layer is current: nothing to draw
    assert drawn == [{2}, {5}, {9}]
    c.boxes._boxes_of = boxes_of
    assert_layers_match_results(c)


@pytest.fixture
def save_threads(monkeypatch) -> list:
    """The threads sessions are written from, in order."""
    import threading

    from napari_sam2_track import annotation_model

    threads = []
    save_session = annotation_model.save_session

    def recording(*args, **kwargs):
        threads.append(threading.current_thread())
        return save_session(*args, **kwargs)

    monkeypatch.setattr(annotation_model, "save_session", recording)
    return threads


def test_save_writes_in_a_worker_and_a_folder_it_may_not_fill_is_a_warning(
    make_napari_viewer, qtbot, video_file, random_checkpoint, tmp_path, save_threads
):
    import threading

    from napari.utils.notifications import NotificationSeverity, notification_manager

    from napari_sam2_track.store import load_session

    _, widget, c = start_with_a_click(make_napari_viewer, qtbot, random_checkpoint, video_file)
    widget.folder.value = tmp_path / "mine.session"
    assert save(qtbot, widget) == tmp_path / "mine.session"
    assert save_threads and save_threads[0] is not threading.main_thread()  # never waits
    assert load_session(tmp_path / "mine.session").prompts.frames() == [0]

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("not a session")
    warnings: list[str] = []

    def record(notification):
        if notification.severity >= NotificationSeverity.WARNING:
            warnings.append(notification.message)

    widget.folder.value = notes
    notification_manager.notification_ready.connect(record)
    try:
        assert save(qtbot, widget) is None
    finally:
        notification_manager.notification_ready.disconnect(record)
    assert len(warnings) == 1 and warnings[0].startswith("Could not save the session:")
    assert sorted(p.name for p in notes.iterdir()) == ["todo.txt"]
    assert c.annotation_model.folder == tmp_path / "mine.session"


def test_autosave_after_propagation_is_offered_back_on_the_next_open(
    make_napari_viewer, qtbot, video_file, random_checkpoint, tmp_path, save_threads
):
    import threading

    viewer, widget, c = start_with_a_click(
        make_napari_viewer, qtbot, random_checkpoint, video_file
    )
    with qtbot.waitSignal(c.autosaved, timeout=WAIT_MS) as autosaved:
        propagate(qtbot, widget, limit=True, first_frame=0, last_frame=3)
    assert save_threads and save_threads[0] is not threading.main_thread()  # never waits
    assert autosaved.args[0].parent == tmp_path / "autosave"
    saved = rles(c, range(4), 1)
    viewer.close()  # as if napari had crashed after the propagation

    viewer = make_napari_viewer()
    widget, c = start(viewer, qtbot, random_checkpoint, video_file)
    assert rles(c, range(4), 1) == saved
    assert c.session.prompts.frames() == [0]


def test_a_bad_object_id_and_a_locked_autosave_are_warnings_not_tracebacks(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    import subprocess
    import sys

    from napari.utils.notifications import NotificationSeverity, notification_manager

    from test_session_lock import HOLD

    viewer = make_napari_viewer()
    _, c = start(viewer, qtbot, random_checkpoint, video_file)
    warnings: list[str] = []

    def record(notification):
        if notification.severity >= NotificationSeverity.WARNING:
            warnings.append(notification.message)

    target = c.annotation_model.autosave_target()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    notification_manager.notification_ready.connect(record)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        c.prompts_layer.data = np.array([[3, 60, 40]], float)
        c.prompts_layer.features = {"label": [1], "obj_id": [0]}
        assert c.autosave() is None
    finally:
        notification_manager.notification_ready.disconnect(record)
        holder.kill()
        holder.wait()
    assert 0 not in c.session.prompts.object_ids()
    assert warnings[0] == (
        "Ignored the change to the prompts: object ids run from 1 to 65535; 0 is not one."
    )
    assert warnings[1].startswith(f"Autosave skipped: {target} is being written by")
    assert f"process {holder.pid}" in warnings[1]
    assert c.autosave() == target  # once the other writer is gone


def test_closing_napari_autosaves_prompts_not_yet_propagated(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer = make_napari_viewer()
    _widget, c = start(viewer, qtbot, random_checkpoint, video_file)
    viewer.dims.set_current_step(0, 2)
    c.add_point(60, 40)
    wait_previews(qtbot, c)
    viewer.close()

    viewer = make_napari_viewer()
    _, c = start(viewer, qtbot, random_checkpoint, video_file)
    assert c.session.prompts.frames() == [2]
    assert c.session.pending_frames == [2]
    assert len(c.prompts_layer.data) == 1


def test_export_from_the_widget_and_save_layers_through_the_writers(
    make_napari_viewer, qtbot, video_file, random_checkpoint, tmp_path
):
    from pycocotools.coco import COCO

    viewer, widget, c = start_with_a_click(
        make_napari_viewer, qtbot, random_checkpoint, video_file
    )
    propagate(qtbot, widget, limit=True, first_frame=0, last_frame=3)
    widget.export_format.value = "coco"
    widget.export_to.value = tmp_path / "coco.json"
    with qtbot.waitSignal(widget.export_finished, timeout=WAIT_MS):
        widget.run_export()
        gc.collect()  # what reports the progress must outlive its caller's references
    coco = COCO(str(tmp_path / "coco.json"))
    for ann in coco.loadAnns(coco.getAnnIds()):
        stored = c.session.results.get(ann["image_id"] - 1, ann["track_id"])
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), stored.mask)

    # File > Save Layers offers this plugin's writers for the masks and the boxes.
    viewer.layers.selection = {c.boxes_layer}
    viewer.layers.save(str(tmp_path / "boxes.csv"), selected=True, plugin=PLUGIN)
    with open(tmp_path / "boxes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    saved = {
        (int(r["frame"]), int(r["obj_id"])): tuple(int(r[k]) for k in ("x0", "y0", "x1", "y1"))
        for r in rows
    }
    results = c.session.results
    expected = {(f, o): box_edges(b) for f in range(N_FRAMES) for o, b in results.boxes(f).items()}
    assert len(rows) == len(saved) == len(expected) >= 4  # every box, not the frame shown
    assert saved == expected
    assert len(c.boxes_layer.data) < len(rows)
    assert {r["name"] for r in rows} == {c.annotation_model.registry[1].name}
    viewer.layers.selection = {c.masks_layer}
    viewer.layers.save(str(tmp_path / "davis"), selected=True, plugin=PLUGIN)
    assert len(list((tmp_path / "davis").glob("*.png"))) == N_FRAMES


def test_rapid_edits_coalesce_into_one_run_for_the_newest_points(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer = make_napari_viewer()
    _, c = start(viewer, qtbot, random_checkpoint, video_file)
    calls = []
    real = c.session.apply_prompt

    def counting(frame, obj_id, prompt):
        calls.append(len(prompt.points))
        return real(frame, obj_id, prompt)

    c.session.apply_prompt = counting
    viewer.dims.set_current_step(0, 0)
    for i in range(8):
        c.add_point(20 + 5 * i, 30)
    wait_previews(qtbot, c)
    assert calls[-1] == 8  # the newest state reached SAM 2
    assert len(calls) < 8  # and stale intermediate states were skipped
    assert len(c.session.prompts.get(0, 1).points) == 8


def test_keys_switch_objects_and_toggle_the_click_label(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    viewer = make_napari_viewer()
    widget, c = start(viewer, qtbot, random_checkpoint, video_file)
    bindings = {str(key): action for key, action in c.prompts_layer.keymap.items()}

    def press(key):
        bindings[key](c.prompts_layer)

    press("N")
    press("N")
    assert c.current_object == 3 and widget.objects.current_id() == 3
    press(",")
    assert c.current_object == 2 and widget.objects.current_id() == 2
    press(".")
    press(".")
    assert c.current_object == 1
    press("T")
    assert c.prompts_layer.feature_defaults["label"][0] == NEGATIVE
    assert c.prompts_layer.feature_defaults["obj_id"][0] == 1


def track_sample_shape(viewer, qtbot):
    """Open the sample with no checkpoint cached, click shape SAMPLE_SHAPE on frame 0 and
    propagate over SAMPLE_FRAMES frames; the widget, its controller and the ground truth."""
    viewer.open_sample(PLUGIN, "synthetic")
    widget, c = start(viewer, qtbot, None)
    gt = make_synthetic_video().labels[:SAMPLE_FRAMES] == SAMPLE_SHAPE  # what the sample is
    viewer.dims.set_current_step(0, 0)
    x, y = deepest_point(gt[0])
    c.add_point(y, x)
    wait_previews(qtbot, c)
    preview = c.masks_layer.data[0] == c.current_object
    propagate(qtbot, widget, limit=True, first_frame=0, last_frame=SAMPLE_FRAMES - 1)
    return widget, c, gt, preview


def test_the_sample_tracks_offline_with_the_bundled_model(make_napari_viewer, qtbot):
    """No checkpoint cached and no network: the widget offers the bundled model for the
    sample, and the whole loop runs on it."""
    viewer = make_napari_viewer()
    widget, c, _, preview = track_sample_shape(viewer, qtbot)
    assert (widget.model.value, widget.image_size.value) == (models.SYNTHETIC_MODEL, 320)
    assert c.session.model.name == models.SYNTHETIC_MODEL
    assert preview.any()
    assert c.session.results.frames() == list(range(SAMPLE_FRAMES))
    for frame in range(SAMPLE_FRAMES):
        np.testing.assert_array_equal(c.masks_layer.data[frame], c.session.results.labels(frame))
    assert set(c.boxes_layer.features["frame"]) <= set(range(SAMPLE_FRAMES))


def test_the_bundled_model_masks_the_sample_shape(make_napari_viewer, qtbot):
    """The preview and the tracked masks cover the sample's square, and each frame's box
    is the square's within 2 px: specks the model adds away from it are left out."""
    viewer = make_napari_viewer()
    _, c, gt, preview = track_sample_shape(viewer, qtbot)
    assert np.array_equal(gt, make_synthetic_video().full_masks[SAMPLE_SHAPE - 1, :SAMPLE_FRAMES])
    assert iou(preview, gt[0]) >= 0.8
    obj = c.current_object
    masks = np.asarray(c.masks_layer.data[:SAMPLE_FRAMES]) == obj
    assert np.mean([iou(masks[t], gt[t]) for t in range(SAMPLE_FRAMES)]) >= 0.8
    drawn = {f: box for (f, o), box in drawn_boxes(c).items() if o == obj}
    assert sorted(drawn) == list(range(SAMPLE_FRAMES))
    for t, box in drawn.items():
        truth = box_edges(mask_to_box(gt[t]))
        assert np.abs(np.subtract(box_edges(box), truth)).max() <= 2, (t, box, truth)


def test_a_session_of_the_sample_video_reopens_on_the_sample(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "synthetic")
    widget, c = start(viewer, qtbot, None)
    viewer.dims.set_current_step(0, 0)
    c.add_point(100, 100)
    wait_previews(qtbot, c)
    propagate(qtbot, widget, limit=True, first_frame=0, last_frame=2)
    widget.folder.value = tmp_path / "sample.session"
    save(qtbot, widget)
    saved = rles(c, range(3), 1)
    viewer.close()

    viewer = make_napari_viewer()
    assert viewer.open(str(tmp_path / "sample.session"), plugin=PLUGIN) == []  # no file
    viewer.open_sample(PLUGIN, "synthetic")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "SAM 2 Tracker")
    widget.folder.value = tmp_path / "sample.session"
    widget.open_session()
    widget.device.value = "cpu"
    widget.start_tracking()
    qtbot.waitUntil(lambda: widget.controller is not None, timeout=WAIT_MS)
    c = widget.controller
    assert c.annotation_model.folder == tmp_path / "sample.session"
    assert rles(c, range(3), 1) == saved
    assert c.session.prompts.frames() == [0]


def test_the_status_names_the_frames_retracked_and_where_the_track_rejoined(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    _, widget, c = start_with_a_click(make_napari_viewer, qtbot, random_checkpoint, video_file)
    propagate(qtbot, widget)
    assert widget.status.value.endswith(" px. Tracked frames 0–15.")
    later = rles(c, range(3, N_FRAMES), 1)
    propagate(qtbot, widget)  # nothing changed: the re-track re-joins at once
    assert widget.status.value.endswith(" px. Re-tracked frames 0–2; the track re-joined at 2.")
    assert rles(c, range(3, N_FRAMES), 1) == later
    propagate(qtbot, widget, to_end=True)
    assert widget.status.value.endswith(" px. Tracked frames 0–15.")


def test_the_view_fits_the_video_once_the_widget_docks(make_napari_viewer, qtbot, video_file):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1400, 900)
    viewer.open(str(video_file), plugin=PLUGIN)
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari 0.9
    viewer.reset_view()
    before = camera.zoom
    with qtbot.waitSignal(camera.events.zoom, timeout=WAIT_MS):
        viewer.window.add_plugin_dock_widget(PLUGIN, "SAM 2 Tracker")
    fitted = camera.zoom
    assert fitted < before  # the dock took part of the canvas, and the view followed
    viewer.reset_view()
    assert camera.zoom == pytest.approx(fitted)


def rectangle(frame, x0, y0, x1, y1):
    """A rectangle as the rectangle tool draws it: corners (frame, row, column)."""
    return np.array([[frame, y0, x0], [frame, y0, x1], [frame, y1, x1], [frame, y1, x0]], float)


def test_a_drawn_box_gives_a_preview_and_survives_save_and_reopen(
    make_napari_viewer, qtbot, video_file, random_checkpoint, tmp_path
):
    viewer = make_napari_viewer()
    widget, c = start(viewer, qtbot, random_checkpoint, video_file)
    viewer.dims.set_current_step(0, 3)
    layer = c.box_prompts_layer
    layer.add_rectangles([rectangle(3, 30, 20, 90, 80)])
    wait_previews(qtbot, c)
    assert c.session.prompts.get(3, 1).box == (30, 20, 90, 80)
    assert c.session.results.get(3, 1) is not None  # its preview
    c.add_point(50, 60)  # points and the box make one prompt
    wait_previews(qtbot, c)
    prompt = c.session.prompts.get(3, 1)
    assert prompt.box == (30, 20, 90, 80) and prompt.points.tolist() == [[60, 50]]

    layer.data = [rectangle(3, 40, 25, 100, 85)]  # moved: a new preview of the new box
    wait_previews(qtbot, c)
    assert c.session.prompts.get(3, 1).box == (40, 25, 100, 85)
    np.testing.assert_array_equal(c.masks_layer.data[3], c.session.results.labels(3))

    widget.new_object.clicked()  # the next box is the new object's
    viewer.dims.set_current_step(0, 6)
    layer.add_rectangles([rectangle(6, 5, 5, 40, 40)])
    wait_previews(qtbot, c)
    assert c.session.prompts.get(6, 2).box == (5, 5, 40, 40)

    widget.folder.value = tmp_path / "boxes.session"
    save(qtbot, widget)
    viewer.close()
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "boxes.session"), plugin=PLUGIN)
    _, c = start(viewer, qtbot, random_checkpoint)
    wait_previews(qtbot, c)
    assert c.session.prompts.get(3, 1).box == (40, 25, 100, 85)
    assert c.session.prompts.get(6, 2).box == (5, 5, 40, 40)
    layer = c.box_prompts_layer
    drawn = {
        (int(r[0, 0]), int(o)): r
        for r, o in zip(layer.data, layer.features["obj_id"], strict=True)
    }
    np.testing.assert_array_equal(drawn[3, 1], rectangle(3, 40, 25, 100, 85))
    np.testing.assert_array_equal(drawn[6, 2], rectangle(6, 5, 5, 40, 40))
    c.delete_object(2)
    assert list(c.box_prompts_layer.features["obj_id"]) == [1]
    assert c.session.prompts.get(6, 2) is None


def test_the_speck_settings_reach_the_session(
    make_napari_viewer, qtbot, video_file, random_checkpoint
):
    from napari_sam2_track.specks import SpeckRule

    viewer = make_napari_viewer()
    specks = {"speck_area": 0.2, "speck_gap": 0.5, "remove_specks": True}
    widget, c = start(viewer, qtbot, random_checkpoint, video_file, **specks)
    session = c.session
    assert session.specks == SpeckRule(0.2, 0.5) and session.remove_specks
    assert session.results.specks == session.specks
    assert not widget.speck_area.enabled  # the session holds them now
