"""Frames on screen are encoded while idle; a click waits for no more than one encode."""

from __future__ import annotations

import pytest

from napari_sam2_track.controller import TrackerController
from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.prefetch import prefetch_order
from napari_sam2_track.synthetic import make_synthetic_video

N_FRAMES = 20
WAIT_MS = 120_000


def test_prefetch_goes_from_the_frame_on_screen_the_way_the_person_moves():
    done = {5, 7}.__contains__
    assert prefetch_order(4, 1, 10, 4, done) == [4, 6, 8]
    assert prefetch_order(4, -1, 10, 8, done) == [4, 3, 2, 1, 0]
    assert prefetch_order(9, 1, 10, 3, lambda f: False) == [9]
    assert prefetch_order(5, 1, 10, 3, lambda f: True) == []


@pytest.fixture
def controller(make_napari_viewer, random_model):
    video = make_synthetic_video(n_frames=N_FRAMES, height=72, width=96, n_objects=1)
    viewer = make_napari_viewer()
    layer = viewer.add_image(video.frames, rgb=True)
    session = TrackingSession(video.frames, random_model, feature_cache_bytes=2**30)
    c = TrackerController(viewer, layer, session)
    yield c
    c.prefetcher.close()
    assert not c.prefetcher.encoding


def _encoder_calls(model, calls: list) -> object:
    return model.predictor.image_encoder.register_forward_hook(lambda *_: calls.append(1))


def _wait_previews(qtbot, c):
    qtbot.waitUntil(lambda: not c.previewing and not c.queue, timeout=WAIT_MS)


def test_a_click_on_a_frame_shown_for_a_while_runs_no_encoder(qtbot, controller, random_model):
    c = controller
    c.prefetcher.ahead = 3  # so the prefetch ends at frame 6, with nothing in flight
    tracker = c.session.tracker
    reached = qtbot.waitSignal(c.prefetcher.encoded, check_params_cb=(6).__eq__, timeout=WAIT_MS)
    with reached:  # moving forward: frames after the one on screen come next
        c.viewer.dims.set_current_step(0, 2)
        c.viewer.dims.set_current_step(0, 3)
    assert all(tracker.is_encoded(f) for f in (3, 4, 5, 6))
    qtbot.waitUntil(lambda: not c.prefetcher.running, timeout=WAIT_MS)
    calls: list = []
    handle = _encoder_calls(random_model, calls)
    try:
        c.add_point(30, 40)
        _wait_previews(qtbot, c)
    finally:
        handle.remove()
    assert c.session.results.get(3, 1) is not None
    assert calls == []


def test_a_click_waits_for_the_encode_in_flight_and_no_more(qtbot, controller, random_model):
    c = controller
    c.prefetcher.ahead = N_FRAMES
    tracker = c.session.tracker
    calls: list = []
    with qtbot.waitSignal(c.prefetcher.encoded, check_params_cb=(2).__eq__, timeout=WAIT_MS):
        c.viewer.dims.set_current_step(0, 1)
        c.viewer.dims.set_current_step(0, 2)  # forward: the prefetch goes on to 3, 4...
    handle = _encoder_calls(random_model, calls)
    try:
        c.add_point(30, 40)  # on frame 2, encoded first
        _wait_previews(qtbot, c)
        after_click = len(calls)
    finally:
        handle.remove()
    assert c.session.results.get(2, 1) is not None
    assert after_click <= 1
    assert not all(tracker.is_encoded(f) for f in range(N_FRAMES))
    # Once the preview is shown, prefetching goes on where it stopped.
    last = N_FRAMES - 1
    with qtbot.waitSignal(
        c.prefetcher.encoded, check_params_cb=lambda f: f == last, timeout=WAIT_MS
    ):
        pass
    assert all(tracker.is_encoded(f) for f in range(2, N_FRAMES))


def test_prefetch_never_runs_alongside_a_propagation(qtbot, controller):
    c = controller
    c.add_point(30, 40)
    _wait_previews(qtbot, c)
    encoded_while_tracking = []
    c.prefetcher.encoded.connect(
        lambda f: encoded_while_tracking.append(f) if c.propagation_worker else None
    )
    with qtbot.waitSignal(c.propagation_finished, timeout=WAIT_MS):
        c.propagate()
        assert not c.prefetcher.running
    assert encoded_while_tracking == []
