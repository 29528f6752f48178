"""Shared fixtures: real videos from ../shared and videos generated with imageio-ffmpeg."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def pytest_configure(config):
    """Load triton (torch's compiler, which the training tests reach) before any viewer:
    it and Mesa's software OpenGL each bring an LLVM, and triton loaded second crashes
    the process."""
    with contextlib.suppress(ImportError):
        import triton  # noqa: F401


def shared_video(name: str) -> Path:
    path = SHARED_VIDEOS / name
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared test videos live in ../shared beside the repo")
    return path


@pytest.fixture
def bedroom() -> Path:
    return shared_video("bedroom.mp4")


@pytest.fixture
def cups() -> Path:
    return shared_video("02_cups.mp4")


def counting_frames(n: int, height: int = 64, width: int = 96) -> np.ndarray:
    """Frames that are easy to tell apart after lossy coding: a bright bar at x = 4*i."""
    frames = np.zeros((n, height, width, 3), dtype=np.uint8)
    rng = np.random.default_rng(1)
    background = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    for i in range(n):
        frames[i] = background
        x = (4 * i) % (width - 4)
        frames[i, :, x : x + 4] = 255
        frames[i, : 8 + (i % (height - 8)), :4, 1] = 200
    return frames


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: float = 25.0,
    output_params: list[str] | None = None,
    codec: str | None = None,
) -> Path:
    """Encode frames with the ffmpeg that imageio-ffmpeg ships."""
    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec=codec,
        macro_block_size=1,
        output_params=output_params or [],
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def run_ffmpeg(*args: str) -> None:
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def sequential_decode(path: Path) -> np.ndarray:
    """Every frame of a plain, uninterrupted decode, in order."""
    reader = imageio_ffmpeg.read_frames(
        str(path), output_params=["-map", "0:v:0", "-fps_mode", "passthrough"]
    )
    meta = next(reader)
    width, height = meta["size"]
    return np.stack([np.frombuffer(b, np.uint8).reshape(height, width, 3) for b in reader])


SHAPES_FRAMES = 12


@pytest.fixture(scope="module")
def shapes_video(tmp_path_factory) -> Path:
    """A short synthetic video of two moving shapes, 160x120, as an mp4 file."""
    from napari_sam2_track.synthetic import make_synthetic_video

    video = make_synthetic_video(n_frames=SHAPES_FRAMES, height=120, width=160, n_objects=2)
    return write_video(tmp_path_factory.mktemp("video") / "shapes.mp4", video.frames)


RANDOM_MODEL_SIZE = 128


@pytest.fixture(scope="session")
def random_model():
    """SAM 2.1 tiny with random weights at a small input size, for plumbing tests."""
    import torch

    from napari_sam2_track.sam2_backend import build_model

    torch.manual_seed(0)
    return build_model(image_size=RANDOM_MODEL_SIZE, random_weights=True, device="cpu")


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory, random_model) -> Path:
    """A SAM 2.1 tiny checkpoint file with random weights, in SAM 2's own format."""
    import torch

    path = tmp_path_factory.mktemp("checkpoints") / "random_tiny.pt"
    torch.save({"model": random_model.predictor.state_dict()}, path)
    return path
