"""npe2 sample data: a synthetic video of moving, occluding shapes."""

from __future__ import annotations

from .synthetic import SYNTHETIC_KEY, make_synthetic_video


def make_sample_video() -> list[tuple]:
    video = make_synthetic_video()
    kwargs = {
        "name": "synthetic shapes",
        "rgb": True,
        "contrast_limits": [0, 255],
        "metadata": {
            "fps": video.fps,
            "source_path": None,
            "object_names": video.names,
            SYNTHETIC_KEY: True,
        },
    }
    return [(video.frames, kwargs, "image")]
