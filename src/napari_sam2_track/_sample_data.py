"""npe2 sample data: a synthetic video of moving, occluding shapes."""

from __future__ import annotations

from .layers import video_layer_kwargs
from .synthetic import SYNTHETIC_KEY, make_synthetic_video


def make_sample_video() -> list[tuple]:
    video = make_synthetic_video()
    metadata = {"object_names": video.names, SYNTHETIC_KEY: True}
    return [
        (
            video.frames,
            video_layer_kwargs("synthetic shapes", video.fps, None, **metadata),
            "image",
        )
    ]
