"""Video reader figures: open time and memory, random scrubbing, decoding in either direction.

    python benchmarks/video_reader.py [--frames 10000] [--cache-dir DIR] [--real VIDEO]

Generates (once, then reuses) a 1080p and a 720p test video with ffmpeg's test source,
and a 1080p copy of a real video (``--real``, by default the shared cups clip, if
present), and prints a table against the targets.
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

TARGETS = {
    "open_s": 2.0,
    "open_rss_mb": 300.0,
    "scrub_s": 0.5,
    "sequential_fps": 100.0,
    "backward_fps": 30.0,
}
SHARED_CUPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "02_cups.mp4"


def encode_once(path: Path, note: str, *ffmpeg_args: str) -> Path:
    """Run ffmpeg with ``ffmpeg_args`` into ``path`` unless it exists; reused afterwards."""
    if path.exists():
        return path
    print(f"{note} into {path}; done once", file=sys.stderr)
    tmp = path.with_suffix(".part.mp4")
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    quiet = ["-hide_banner", "-loglevel", "error", "-y"]
    subprocess.run([ffmpeg, *quiet, *ffmpeg_args, "-pix_fmt", "yuv420p", str(tmp)], check=True)
    tmp.rename(path)
    return path


def make_test_video(path: Path, size: str, frames: int, gop: int = 60) -> Path:
    source = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30", "-frames:v", str(frames)]
    codec = ["-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop)]
    return encode_once(path, f"generating {frames} frames at {size}", *source, *codec)


def make_1080p_copy(source: Path, path: Path) -> Path:
    """Re-encode a real video at 1920x1080 with libx264's default keyframe interval (250)."""
    scale = ["-i", str(source), "-map", "0:v:0", "-vf", "scale=1920:1080"]
    codec = ["-c:v", "libx264", "-preset", "veryfast"]
    return encode_once(path, f"re-encoding {source.name} at 1080p", *scale, *codec)


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


def measure_backward(path: Path, steps: int, window_bytes: int | None = None) -> dict:
    """Jump near the end (the first seek), then step back ``steps`` frames one at a time."""
    from napari_sam2_track.video import DEFAULT_WINDOW_BYTES, VideoFrames

    budget = DEFAULT_WINDOW_BYTES if window_bytes is None else window_bytes
    video = VideoFrames(path, window_bytes=budget)
    top = len(video) - 1
    steps = min(steps, top)
    video[top]
    window_peak = 0
    times = []
    for index in range(top - 1, top - 1 - steps, -1):
        start = time.perf_counter()
        video[index]
        times.append(time.perf_counter() - start)
        window_peak = max(window_peak, video.cache_info()["window_bytes"])
    return {
        "fps": len(times) / sum(times),
        "first_step_s": times[0],
        "window_mb": window_peak / 2**20,
        "budget_mb": budget / 2**20,
    }


def backward_rows(label: str, path: Path, steps: int) -> list[tuple]:
    windowed = measure_backward(path, steps)
    plain = measure_backward(path, 10, window_bytes=0)
    return [
        (f"step back {label}, after a seek (frames/s)", windowed["fps"], TARGETS["backward_fps"]),
        ("  first step back (s)", windowed["first_step_s"], None),
        (f"  window peak (MB, budget {windowed['budget_mb']:.0f})", windowed["window_mb"], None),
        ("  without the window (frames/s)", plain["fps"], None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--real", type=Path, default=SHARED_CUPS)
    parser.add_argument("--steps", type=int, default=290, help="backward steps per video")
    args = parser.parse_args()

    long_1080 = make_test_video(
        args.cache_dir / f"bench_1080p_{args.frames}.mp4", "1920x1080", args.frames
    )
    clip_720 = make_test_video(args.cache_dir / "bench_720p_1000.mp4", "1280x720", 1000)

    opened = measure_open(long_1080)
    scrub = measure_scrub(long_1080)
    fps = measure_sequential(clip_720, 1000)
    backward = backward_rows("1080p test source", long_1080, args.steps)
    if args.real.exists():
        real_1080 = make_1080p_copy(
            args.real, args.cache_dir / f"bench_1080p_{args.real.stem}.mp4"
        )
        backward += backward_rows(f"1080p {args.real.stem}", real_1080, args.steps)

    rows = [
        (f"open {opened['frames']}-frame 1080p (s)", opened["open_s"], TARGETS["open_s"], "<"),
        ("RSS after open (MB)", opened["rss_mb"], TARGETS["open_rss_mb"], "<"),
        ("  ffmpeg indexer peak RSS (MB)", opened["ffmpeg_rss_mb"], None, ""),
        ("scrub to random frame, mean (s)", float(np.mean(scrub)), TARGETS["scrub_s"], "<"),
        ("scrub to random frame, max (s)", float(np.max(scrub)), TARGETS["scrub_s"], "<"),
        ("sequential decode 720p (frames/s)", fps, TARGETS["sequential_fps"], ">="),
        *((name, value, target, ">=") for name, value, target in backward),
    ]
    print(f"{'measure':52} {'value':>10} {'target':>10}  met")
    for name, value, target, op in rows:
        if target is None:
            print(f"{name:52} {value:10.2f}")
            continue
        met = value < target if op == "<" else value >= target
        print(f"{name:52} {value:10.2f} {op + str(target):>10}  {'yes' if met else 'NO'}")


if __name__ == "__main__":
    main()
