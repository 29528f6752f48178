"""Engine figures: per-frame cost against raw SAM 2, and memory on long videos.

    python benchmarks/engine.py [--image-size 256] [--device auto]
                                [--speed-frames 40] [--lengths 250 500 1000 2000]

1. Speed: the same frames, model and image size through SAM 2's own
   ``SAM2VideoPredictor`` (frames preloaded by ``init_state``) and through
   :class:`TrackingSession` (frames decoded on demand, masks RLE-encoded). Per-frame
   times once warm, and their ratio. Target: engine overhead <= 5 %.
2. Memory: peak RSS of a fresh process that tracks one object through N frames of a
   generated video. Target: flat, < 3 GB at 2,000 frames (image size 256, CPU).

Random weights are used (no checkpoint is needed): compute per frame is the same.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np

WARMUP_FRAMES = 3


def make_video(path: Path, frames: int, size: str = "640x360") -> Path:
    if not path.exists():
        tmp = path.with_suffix(".part.mp4")
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"testsrc2=size={size}:rate=30",
                "-frames:v",
                str(frames),
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "60",
                "-pix_fmt",
                "yuv420p",
                str(tmp),
            ],
            check=True,
        )
        tmp.rename(path)
    return path


def timed(frames_iter) -> list[float]:
    times, last = [], time.perf_counter()
    for _ in frames_iter:
        now = time.perf_counter()
        times.append(now - last)
        last = now
    return times[WARMUP_FRAMES:]


def measure_speed(image_size: int, device: str, n_frames: int, workdir: Path) -> dict:
    import imageio.v3 as iio
    import torch

    from napari_sam2_track.engine import TrackingSession
    from napari_sam2_track.frame_folder import ImageFolderFrames
    from napari_sam2_track.sam2_backend import build_model

    video = make_video(workdir / f"speed_{n_frames}.mp4", n_frames)
    jpegs = workdir / f"speed_{n_frames}_jpg"
    if not jpegs.exists():
        jpegs.mkdir()
        for i, frame in enumerate(iio.imiter(video)):
            iio.imwrite(jpegs / f"{i:05d}.jpg", frame, quality=95)
    torch.manual_seed(0)
    model = build_model(image_size=image_size, random_weights=True, device=device)
    point = np.array([[320.0, 180.0]], np.float32)
    label = np.array([1], np.int32)

    # SAM 2 as its README uses it (frames preloaded from a JPEG folder).
    predictor = model.predictor
    with model.calls():
        state = predictor.init_state(str(jpegs))
        predictor.add_new_points_or_box(state, 0, 1, points=point, labels=label)
        raw = timed(predictor.propagate_in_video(state))

    session = TrackingSession(ImageFolderFrames(jpegs), model)
    session.set_prompt(0, 1, points=point, labels=label)
    ours = timed(session.propagate())
    return {"raw": float(np.median(raw)), "engine": float(np.median(ours)), "frames": n_frames}


_MEMORY_PROBE = """
import json, resource, sys, torch
from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.sam2_backend import build_model
from napari_sam2_track.video import VideoFrames
torch.manual_seed(0)
model = build_model(image_size=int(sys.argv[2]), random_weights=True, device=sys.argv[3])
session = TrackingSession(VideoFrames(sys.argv[1]), model)
session.set_prompt(0, 1, points=[(320, 180)], labels=[1])
frames = sum(1 for _ in session.propagate())
print(json.dumps({"frames": frames,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "state": session.tracking_state_frames()}))
"""


def measure_memory(n_frames: int, image_size: int, device: str, workdir: Path) -> dict:
    video = make_video(workdir / f"long_{n_frames}.mp4", n_frames)
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(video), str(image_size), device],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--speed-frames", type=int, default=40)
    parser.add_argument("--lengths", type=int, nargs="*", default=[250, 500, 1000, 2000])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    speed = measure_speed(args.image_size, args.device, args.speed_frames, args.workdir)
    overhead = speed["engine"] / speed["raw"] - 1
    print(
        f"speed: image size {args.image_size}, device {args.device}, "
        f"median of {speed['frames'] - WARMUP_FRAMES} warm frames"
    )
    print(f"  raw SAM2VideoPredictor   {speed['raw'] * 1000:8.1f} ms/frame")
    print(f"  TrackingSession          {speed['engine'] * 1000:8.1f} ms/frame")
    verdict = "met" if overhead <= 0.05 else "NOT met"
    print(
        f"  engine / raw             {speed['engine'] / speed['raw']:8.3f}  "
        f"(overhead {overhead:+.1%}; target <= +5%: {verdict})"
    )

    print(f"memory: one object, image size {args.image_size}, device {args.device}")
    print(f"  {'frames':>7} {'peak RSS (MB)':>14} {'SAM 2 frames held':>18}")
    for n in args.lengths:
        result = measure_memory(n, args.image_size, args.device, args.workdir)
        held = result["state"]["tracked"] + result["state"]["conditioning"]
        print(f"  {result['frames']:>7} {result['rss_mb']:>14.0f} {held:>18}", flush=True)


if __name__ == "__main__":
    main()
