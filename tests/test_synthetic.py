"""The synthetic video generator behind the sample data."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from napari_sam2_track.synthetic import make_synthetic_video

from synthetic_eval import border_distance, deepest_point


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


def test_objects_can_leave_come_back_and_deform():
    video = make_synthetic_video(
        n_frames=60, height=96, width=128, n_objects=4, seed=5, deform=0.25, leave=True
    )
    area = video.full_masks.sum(axis=(2, 3))  # (objects, frames)
    gone_and_back = [
        obj
        for obj in range(video.n_objects)
        if any(
            area[obj, t] == 0 and area[obj, :t].any() and area[obj, t:].any() for t in range(60)
        )
    ]
    assert gone_and_back, "no object leaves the frame and comes back"
    # Away from the borders a rigid shape keeps its area; a deforming one does not.
    inside = video.full_masks[:, :, 0].sum(-1) + video.full_masks[:, :, -1].sum(-1) == 0
    inside &= video.full_masks[:, :, :, 0].sum(-1) + video.full_masks[:, :, :, -1].sum(-1) == 0
    inside &= area > 0
    spread = [
        np.ptp(area[obj][inside[obj]]) / area[obj][inside[obj]].mean()
        for obj in range(video.n_objects)
        if inside[obj].sum() > 5
    ]
    assert spread and max(spread) > 0.3
    rigid = make_synthetic_video(n_frames=30, height=96, width=128, n_objects=1, seed=5)
    assert np.ptp(rigid.full_masks[0].sum(axis=(1, 2))) < 0.1 * rigid.full_masks[0, 0].sum()


def mean_colours(video) -> np.ndarray:
    """Each visible object's mean colour on the first frame."""
    frame, labels = video.frames[0].astype(float), video.labels[0]
    ids = [i for i in range(1, video.n_objects + 1) if (labels == i).any()]
    return np.array([frame[labels == i].mean(0) for i in ids])


def test_twins_look_alike_and_move_as_the_same_seed_would():
    plain = make_synthetic_video(n_frames=4, height=96, width=128, n_objects=3, seed=8)
    twins = make_synthetic_video(n_frames=4, height=96, width=128, n_objects=3, seed=8, twins=True)
    assert len({name.split()[0] for name in twins.names}) == 1
    assert len({name.split()[0] for name in plain.names}) == 3
    # Same motion: only the look changes, so a twin video is the plain one restyled.
    for obj in range(3):
        for t in (0, 3):
            centres = [np.argwhere(v.full_masks[obj, t]).mean(0) for v in (plain, twins)]
            assert np.allclose(*centres, atol=3)
    # One texture for all: the objects' mean colours agree, as the plain ones' do not.
    assert np.ptp(mean_colours(twins), axis=0).max() < 20
    assert np.ptp(mean_colours(plain), axis=0).max() > 20


def test_border_distance_is_the_whole_frames_distance_transform():
    """Taken on the object's bounding box alone, it must equal the transform of the whole
    frame (with beyond the edge counting as outside), and so give the same clicks."""
    video = make_synthetic_video(n_frames=4, height=96, width=128, n_objects=4, seed=7, leave=True)
    rng = np.random.default_rng(0)
    masks = [video.labels[t] == obj for t in range(4) for obj in range(1, 5)]
    masks += [video.labels[0] == 0]  # the background: touches every edge
    masks += [(video.labels[1] == 2) ^ (rng.random((96, 128)) < 0.02)]  # ragged, in pieces
    masks += [np.zeros((96, 128), bool), np.ones((96, 128), bool)]
    for mask in masks:
        whole = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        np.testing.assert_array_equal(border_distance(mask), whole)
        y, x = np.unravel_index(int(np.argmax(whole)), whole.shape)
        assert deepest_point(mask) == (float(x), float(y))


def test_noise_is_exactly_the_bilinear_interpolation_of_its_grid():
    """Interpolated row by row for speed, the noise must still be each pixel's four-corner
    interpolation to the last bit: every video, and so the training data of the bundled
    model, is made of it."""
    from napari_sam2_track.synthetic import _smooth_noise

    height, width, cell = 37, 53, 6
    noise = _smooth_noise(np.random.default_rng(9), height, width, cell)
    grid = np.random.default_rng(9).random((height // cell + 2, width // cell + 2))
    expected = np.empty((height, width))
    for y in range(height):
        for x in range(width):
            y0, x0, fy, fx = y // cell, x // cell, y / cell - y // cell, x / cell - x // cell
            top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
            bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
            expected[y, x] = top * (1 - fy) + bottom * fy
    np.testing.assert_array_equal(noise, expected)


def test_a_crowd_starts_touching_in_colours_close_to_one_another():
    plain = make_synthetic_video(n_frames=2, height=120, width=160, n_objects=4, seed=9)
    crowd = make_synthetic_video(
        n_frames=2, height=120, width=160, n_objects=4, seed=9, crowd=True
    )
    assert crowd.names == plain.names  # the same shapes, placed and coloured otherwise
    assert np.ptp(mean_colours(crowd), axis=0).max() < 0.35 * 255
    assert np.ptp(mean_colours(plain), axis=0).max() > 0.35 * 255
    touching = []
    for seed in range(20):
        crowd = make_synthetic_video(
            n_frames=1, height=120, width=160, n_objects=4, seed=seed, crowd=True
        )
        near_first = ndimage.binary_dilation(crowd.full_masks[0, 0], iterations=2)
        touching += [bool((near_first & crowd.full_masks[obj, 0]).any()) for obj in (1, 2, 3)]
    # Some are pushed apart where the first object sits by the frame's border.
    assert np.mean(touching) >= 0.85
