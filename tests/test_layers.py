"""The layer module's plain conversions and keyword arguments (no viewer needed)."""

from __future__ import annotations

import numpy as np

from napari_sam2_track.layers import (
    PROMPTS_LAYER,
    prompt_points,
    prompts_from_layer,
    prompts_layer_kwargs,
    video_layer_kwargs,
)
from napari_sam2_track.prompts import FramePrompt, PromptSet


def test_prompt_points_are_frame_row_column_and_read_back_the_same():
    prompts = PromptSet()
    prompts.set(2, 1, FramePrompt([(40.0, 10.0), (5.0, 7.0)], [1, 0]))
    prompts.set(4, 3, FramePrompt([(1.0, 2.0)], [1]))
    rows, features = prompt_points(prompts)
    np.testing.assert_array_equal(rows, [[2, 10, 40], [2, 7, 5], [4, 2, 1]])
    assert features == {"label": [1, 0, 1], "obj_id": [1, 1, 3]}
    assert prompts_from_layer(rows, features) == dict(prompts.items())


def test_no_prompts_make_an_empty_points_layer():
    rows, features = prompt_points(PromptSet())
    assert rows.shape == (0, 3)
    kwargs = prompts_layer_kwargs(2.0, features)
    assert kwargs["name"] == PROMPTS_LAYER
    assert list(kwargs["features"].columns) == ["label", "obj_id"]
    assert kwargs["features"]["obj_id"].dtype.kind == "i"


def test_video_layers_are_rgb_with_their_source_in_the_metadata():
    kwargs = video_layer_kwargs("clip", 25.0, "/videos/clip.mp4", sam2_session="/s")
    assert kwargs["rgb"] and kwargs["contrast_limits"] == [0, 255]
    assert kwargs["metadata"] == {
        "fps": 25.0,
        "source_path": "/videos/clip.mp4",
        "sam2_session": "/s",
    }
