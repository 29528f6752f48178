"""The synthetic video generator behind the sample data."""

from __future__ import annotations

import numpy as np

from napari_sam2_track.synthetic import make_synthetic_video


def test_same_seed_same_video_other_seed_other_video():
    a = make_synthetic_video(n_frames=5, height=64, width=80, seed=3)
    b = make_synthetic_video(n_frames=5, height=64, width=80, seed=3)
    c = make_synthetic_video(n_frames=5, height=64, width=80, seed=4)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)


def test_default_video_has_moving_objects_that_occlude_each_other():
    video = make_synthetic_video()
    t, h, w, _ = video.frames.shape
    assert (t, h, w) == (60, 360, 480)
    assert video.n_objects >= 3
    ids = np.arange(1, video.n_objects + 1)
    visible = (video.labels[:, None] == ids[None, :, None, None]).sum(axis=(2, 3))
    full = video.full_masks.sum(axis=(2, 3)).T
    assert np.all(visible <= full)
    assert np.any(visible < full), "no object is ever hidden behind another"
    for obj in range(video.n_objects):
        ys, xs = np.nonzero(video.full_masks[obj, 0])
        ye, xe = np.nonzero(video.full_masks[obj, -1])
        assert abs(ys.mean() - ye.mean()) + abs(xs.mean() - xe.mean()) > 10
    # The pixels the labels give an object are drawn in that object's texture.
    frame0, labels0 = video.frames[0].astype(int), video.labels[0]
    assert np.abs(frame0[labels0 == 1].mean(0) - frame0[labels0 == 0].mean(0)).sum() > 20
