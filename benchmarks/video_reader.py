"""Video reader figures: open time and memory, random scrubbing, sequential decoding.

    python benchmarks/video_reader.py [--frames 10000] [--cache-dir DIR]

Generates (once, then reuses) a 1080p and a 720p test video with ffmpeg's test source,
and prints a table against the targets.
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

TARGETS = {"open_s": 2.0, "open_rss_mb": 300.0, "scrub_s": 0.5, "sequential_fps": 100.0}


def make_test_video(path: Path, size: str, frames: int, gop: int = 60) -> Path:
    if path.exists():
        return path
    print(f"generating {path.name} ({frames} frames, {size}); done once", file=sys.stderr)
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
            str(gop),
            "-pix_fmt",
            "yuv420p",
            str(tmp),
        ],
        check=True,
    )
    tmp.rename(path)
    return path


_OPEN_PROBE = """
import json, resource, sys, time
t = time.perf_counter()
from napari_sam2_track.video import VideoFrames
imported = time.perf_counter()
video = VideoFrames(sys.argv[1])
opened = time.perf_counter()
print(json.dumps({
    "frames": len(video), "import_s": imported - t, "open_s": opened - imported,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "ffmpeg_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""


def measure_open(path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _OPEN_PROBE, str(path)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def measure_scrub(path: Path, jumps: int = 20, seed: int = 0) -> list[float]:
    from napari_sam2_track.video import VideoFrames

    video = VideoFrames(path)
    rng = np.random.default_rng(seed)
    times = []
    for index in rng.integers(0, len(video), size=jumps):
        start = time.perf_counter()
        video[int(index)]
        times.append(time.perf_counter() - start)
    return times


def measure_sequential(path: Path, frames: int) -> float:
    from napari_sam2_track.video import VideoFrames

    video = VideoFrames(path)
    frames = min(frames, len(video))
    start = time.perf_counter()
    for index in range(frames):
        video[index]
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    long_1080 = make_test_video(
        args.cache_dir / f"bench_1080p_{args.frames}.mp4", "1920x1080", args.frames
    )
    clip_720 = make_test_video(args.cache_dir / "bench_720p_1000.mp4", "1280x720", 1000)

    opened = measure_open(long_1080)
    scrub = measure_scrub(long_1080)
    fps = measure_sequential(clip_720, 1000)

    rows = [
        (f"open {opened['frames']}-frame 1080p (s)", opened["open_s"], TARGETS["open_s"], "<"),
        ("RSS after open (MB)", opened["rss_mb"], TARGETS["open_rss_mb"], "<"),
        ("  ffmpeg indexer peak RSS (MB)", opened["ffmpeg_rss_mb"], None, ""),
        ("scrub to random frame, mean (s)", float(np.mean(scrub)), TARGETS["scrub_s"], "<"),
        ("scrub to random frame, max (s)", float(np.max(scrub)), TARGETS["scrub_s"], "<"),
        ("sequential decode 720p (frames/s)", fps, TARGETS["sequential_fps"], ">="),
    ]
    print(f"{'measure':40} {'value':>10} {'target':>10}  met")
    for name, value, target, op in rows:
        if target is None:
            print(f"{name:40} {value:10.2f}")
            continue
        met = value < target if op == "<" else value >= target
        print(f"{name:40} {value:10.2f} {op + str(target):>10}  {'yes' if met else 'NO'}")


if __name__ == "__main__":
    main()
