"""One intensity policy: frame folders and arrays of the same data reach SAM 2 alike."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2_track.intensity import IntensityRange, SourceError, as_uint8_rgb
from napari_sam2_track.model_input import ModelFrames
from napari_sam2_track.video import open_video

IMAGE_SIZE = 64


def twelve_bit_frames(n_frames: int = 3, height: int = 40, width: int = 56) -> np.ndarray:
    """A 12-bit camera's frames in a 16-bit container: values 0..4095 only."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 4095, width)[None, None, :]
    noise = rng.normal(0, 100, (n_frames, height, width))
    return np.clip(ramp + noise, 0, 4095).astype(np.uint16)


def test_a_12_bit_folder_and_the_same_array_reach_sam2_identically(tmp_path):
    import imageio.v3 as iio
    import torch

    data = twelve_bit_frames()
    for i, frame in enumerate(data):
        iio.imwrite(tmp_path / f"{i:03d}.png", frame)
    folder = open_video(tmp_path)
    assert folder.intensity == IntensityRange.for_source(data)
    from_folder, from_array = ModelFrames(folder, IMAGE_SIZE), ModelFrames(data, IMAGE_SIZE)
    for i in range(len(data)):
        assert torch.equal(from_folder[i], from_array[i])
    shown = folder[:]
    assert shown.max() == 255 and shown.mean() > 100  # not nearly black


def test_8_bit_data_keeps_its_values():
    frames = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    intensity = IntensityRange.for_source(frames)
    assert intensity == IntensityRange(0.0, 255.0)
    np.testing.assert_array_equal(as_uint8_rgb(frames[1], intensity), frames[1])


def test_alpha_does_not_set_the_range():
    rgba = np.zeros((2, 4, 4, 4), np.uint16)
    rgba[..., :3] = np.arange(16, dtype=np.uint16).reshape(4, 4)[..., None] * 100
    rgba[..., 3] = 65535
    intensity = IntensityRange.for_source(rgba)
    assert intensity.high <= 1500
    assert as_uint8_rgb(rgba[0], intensity)[-1, -1].tolist() == [255, 255, 255]


def test_an_image_that_is_neither_grey_nor_rgb_is_refused():
    with pytest.raises(SourceError, match="neither greyscale nor RGB"):
        as_uint8_rgb(np.zeros((4, 4, 5), np.uint8), IntensityRange(0.0, 255.0))
