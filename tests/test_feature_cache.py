"""Image features encoded once per frame: the same masks, fewer encodings, a budget."""

from __future__ import annotations

import pytest
import torch

from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.sam2_backend.feature_cache import FeatureCache, default_budget
from napari_sam2_track.synthetic import make_synthetic_video

N_FRAMES = 12


@pytest.fixture(scope="module")
def video():
    return make_synthetic_video(n_frames=N_FRAMES, height=72, width=96, n_objects=2)


def _count_encodings(model) -> list[int]:
    calls = []
    handle = model.predictor.image_encoder.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


def _annotate(session) -> dict:
    """Track two objects, correct one late, track again; every mask's RLE."""
    session.set_prompt(0, 1, points=[(30, 30)], labels=[1])
    session.set_prompt(0, 2, points=[(70, 50), (10, 10)], labels=[1, 0])
    list(session.propagate())
    session.set_prompt(7, 1, points=[(40, 20)], labels=[0])
    session.set_prompt(7, 1, points=[(40, 20), (30, 30)], labels=[0, 1])
    list(session.propagate())
    return {
        (f, o): session.results.get(f, o).rle["counts"] for f in range(N_FRAMES) for o in (1, 2)
    }


def test_masks_are_identical_with_the_cache_on_and_off(random_model, video):
    encodings, handle = _count_encodings(random_model)
    try:
        without = _annotate(TrackingSession(video.frames, random_model, feature_cache_bytes=0))
        uncached = len(encodings)
        encodings.clear()
        cached = TrackingSession(video.frames, random_model, feature_cache_bytes=2**30)
        with_cache = _annotate(cached)
    finally:
        handle.remove()
    assert with_cache == without
    # Each frame encoded once; without the cache the correction's clicks and pass encode again.
    assert len(encodings) == N_FRAMES < uncached
    assert len(cached.tracker.features) == N_FRAMES


def test_a_propagation_again_encodes_no_frame_already_seen(random_model, video):
    session = TrackingSession(video.frames, random_model, feature_cache_bytes=2**30)
    session.set_prompt(0, 1, points=[(30, 30)], labels=[1])
    list(session.propagate())
    encodings, handle = _count_encodings(random_model)
    try:
        session.set_prompt(5, 1, points=[(35, 30)], labels=[1])
        list(session.propagate())
    finally:
        handle.remove()
    assert encodings == []
    assert session.tracker.features.hits > 0


def test_a_frame_encoded_ahead_of_a_click_is_not_encoded_again(random_model, video):
    session = TrackingSession(video.frames, random_model, feature_cache_bytes=2**30)
    session.tracker.encode(4)
    encodings, handle = _count_encodings(random_model)
    try:
        session.set_prompt(4, 1, points=[(30, 30)], labels=[1])
    finally:
        handle.remove()
    assert encodings == []


def test_the_cache_keeps_within_its_budget_evicting_the_least_recently_used(random_model, video):
    one = TrackingSession(video.frames, random_model, feature_cache_bytes=2**30)
    one.tracker.encode(0)
    frame_bytes = one.tracker.features.nbytes
    session = TrackingSession(video.frames, random_model, feature_cache_bytes=3 * frame_bytes)
    features = session.tracker.features
    for frame in (0, 1, 2):
        session.tracker.encode(frame)
    assert features.get(0) is not None  # now the most recently used
    session.tracker.encode(3)
    assert sorted(f for f in range(4) if f in features) == [0, 2, 3]
    assert features.nbytes == 3 * frame_bytes <= features.budget_bytes
    session.set_prompt(0, 1, points=[(30, 30)], labels=[1])
    for _ in session.propagate():
        assert features.nbytes <= features.budget_bytes


def _fake_features(size: int):
    image = torch.zeros(1, 3, 8, 8)
    out = {
        "backbone_fpn": [torch.zeros(size // 4, dtype=torch.float32)],
        "vision_pos_enc": [torch.ones(2, 2)],
        "vision_features": None,
    }
    return image, out


def test_positional_encodings_are_kept_once_and_the_image_not_at_all():
    cache = FeatureCache(budget_bytes=10_000)
    for frame in range(3):
        cache.put(frame, *_fake_features(1000))
    assert cache.nbytes == 3000
    first, second = cache.get(0), cache.get(1)
    assert first[1]["vision_pos_enc"] is second[1]["vision_pos_enc"]
    assert first[0].numel() == 1  # SAM 2 expands the image but never reads it


def test_a_frame_larger_than_the_budget_is_not_kept():
    cache = FeatureCache(budget_bytes=999)
    cache.put(0, *_fake_features(1000))
    assert len(cache) == 0 and cache.nbytes == 0


def test_the_default_budget_is_a_share_of_free_memory_and_capped():
    budget = default_budget(torch.device("cpu"))
    assert 0 < budget <= 4 * 2**30


@pytest.fixture(scope="module")
def checkpoint_model(random_checkpoint):
    from napari_sam2_track.sam2_backend import build_model

    return build_model(checkpoint=random_checkpoint, image_size=128, device="cpu")


def test_features_on_disk_survive_a_reopen(checkpoint_model, video, tmp_path):
    first = TrackingSession(video.frames, checkpoint_model, features_on_disk=tmp_path)
    shown = first.set_prompt(2, 1, points=[(30, 30)], labels=[1])
    assert first.tracker.features.disk is not None
    again = TrackingSession(video.frames, checkpoint_model, features_on_disk=tmp_path)
    assert again.tracker.is_encoded(2) and not again.tracker.is_encoded(3)
    calls, handle = _count_encodings(checkpoint_model)
    try:
        preview = again.set_prompt(2, 1, points=[(30, 30)], labels=[1])
    finally:
        handle.remove()
    assert calls == []
    assert again.tracker.features.disk_hits == 1
    assert preview.rle["counts"] == shown.rle["counts"]


def test_features_on_disk_are_never_read_for_another_video(checkpoint_model, video, tmp_path):
    TrackingSession(video.frames, checkpoint_model, features_on_disk=tmp_path).tracker.encode(0)
    other = make_synthetic_video(n_frames=N_FRAMES, height=72, width=96, n_objects=2, seed=99)
    session = TrackingSession(other.frames, checkpoint_model, features_on_disk=tmp_path)
    assert not session.tracker.is_encoded(0)
    assert len(list(tmp_path.iterdir())) == 2  # one folder per video


def test_a_folder_of_another_model_or_size_is_refused(tmp_path):
    from dataclasses import replace

    from napari_sam2_track.sam2_backend.feature_store import KEY_FILE, DiskFeatures, FeatureKey

    key = FeatureKey("video:12", "sam2.1_hiera_tiny", "w:1:2", 128, "float32")
    store = DiskFeatures(tmp_path, key)
    store.save(0, [torch.ones(4)], [torch.zeros(2)])
    assert 0 in store
    for other in (replace(key, image_size=256), replace(key, model="sam2.1_hiera_small")):
        assert 0 not in DiskFeatures(tmp_path, other)
    # A folder that says it holds another key (say, edited by hand) is not read.
    (store.folder / KEY_FILE).write_text('{"video": "another"}')
    assert 0 not in DiskFeatures(tmp_path, key)


def test_a_damaged_frame_on_disk_is_encoded_again(checkpoint_model, video, tmp_path):
    first = TrackingSession(video.frames, checkpoint_model, features_on_disk=tmp_path)
    first.tracker.encode(1)
    folder = first.tracker.features.disk.folder
    (folder / "0000001.pt").write_bytes(b"not a tensor file")
    again = TrackingSession(video.frames, checkpoint_model, features_on_disk=tmp_path)
    calls, handle = _count_encodings(checkpoint_model)
    try:
        again.set_prompt(1, 1, points=[(30, 30)], labels=[1])
    finally:
        handle.remove()
    assert len(calls) == 1
    assert TrackingSession(
        video.frames, checkpoint_model, features_on_disk=tmp_path
    ).tracker.features.get(1)


def test_random_weights_are_never_kept_on_disk(random_model, video, tmp_path):
    session = TrackingSession(video.frames, random_model, features_on_disk=tmp_path)
    assert session.tracker.features.disk is None
