"""The annotation loop's waits: a click, a propagation, and the re-propagation after a
late correction, as before (to the end, encoding every frame again) and now (features
kept, re-tracking until the track re-joins). Prints figures; not a test.

    .venv/bin/python benchmarks/correction_loop.py --quick
    .venv/bin/python benchmarks/correction_loop.py [VIDEO] [--sizes 512 1024] [--frames N]

The last line reads ``identical=yes|no retrack_speedup=X cache_speedup=Y
click_after_prefetch_s=Z`` for the last size measured. SAM 2.1 tiny with random weights
(no download here): the encoder and decoder cost what trained weights cost; where the
track re-joins depends on the weights, so the re-join figure is indicative only.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.sam2_backend import build_model
from napari_sam2_track.video import open_video

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def timed(action):
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def masks(session: TrackingSession) -> dict:
    return {
        (f, o): session.results.get(f, o).rle["counts"]
        for f in session.results.frames()
        for o in session.results.object_ids()
        if session.results.get(f, o) is not None
    }


def annotate(frames, model, cache_bytes: int, click, fix, until: str):
    """Track from ``click``, correct on ``fix``; the re-propagation's time and the session."""
    session = TrackingSession(frames, model, feature_cache_bytes=cache_bytes)
    frame, point = click
    session.set_prompt(frame, 1, points=[point], labels=[1])
    full, _ = timed(lambda: list(session.propagate()))
    frame, point = fix
    session.set_prompt(frame, 1, points=[click[1], point], labels=[1, 0])
    run = session.propagate(until=until)
    again, _ = timed(lambda: list(run))
    return session, full, again, run


def measure(frames, size: int, budget: int) -> str:
    torch.manual_seed(0)
    model = build_model(image_size=size, random_weights=True, device="cpu")
    n, height, width = len(frames), frames.shape[1], frames.shape[2]
    click = (0, (width / 2, height / 2))
    fix = (int(n * 0.7), (width / 4, height / 4))

    clicks = TrackingSession(frames, model, feature_cache_bytes=budget)
    cold, _ = timed(lambda: clicks.set_prompt(3, 1, points=[click[1]], labels=[1]))
    clicks.tracker.encode(5)  # what the idle prefetch does while frame 5 is on screen
    warm, _ = timed(lambda: clicks.set_prompt(5, 1, points=[click[1]], labels=[1]))

    before, full, old, _ = annotate(frames, model, 0, click, fix, "end")
    uncached = psutil.Process().memory_info().rss  # model, frames and one session
    cached, _, cache_only, _ = annotate(frames, model, budget, click, fix, "end")
    grown = psutil.Process().memory_info().rss - uncached  # a second session, and its cache
    _, _, new, run = annotate(frames, model, budget, click, fix, "rejoin")
    identical = masks(before) == masks(cached)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kept = cached.tracker.features.nbytes
    print(f"\n{size} px, {n} frames of {width}x{height}, correction on frame {fix[0]}")
    print(f"  click on a cold frame        {cold:8.2f} s")
    print(f"  click after prefetch         {warm:8.2f} s")
    print(f"  full propagation             {full:8.2f} s ({full / n:.2f} s/frame)")
    print(f"  re-propagation, as before    {old:8.2f} s (to the end, encoding again)")
    print(f"  re-propagation, cache only   {cache_only:8.2f} s (to the end)")
    print(f"  re-propagation, now          {new:8.2f} s ({run.summary()})")
    print(f"  masks identical, cache on/off: {'yes' if identical else 'no'}")
    print(f"  features kept {kept / 2**20:.0f} MiB of a {budget / 2**20:.0f} MiB budget; ", end="")
    print(f"RSS grew {grown / 2**20:.0f} MiB with them (peak RSS {rss / 2**20:.0f} MiB in all)")
    return (
        f"identical={'yes' if identical else 'no'} retrack_speedup={old / new:.1f} "
        f"cache_speedup={old / cache_only:.1f} click_after_prefetch_s={warm:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=SHARED / "02_cups.mp4")
    parser.add_argument("--quick", action="store_true", help="256 px, 40 frames")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--budget-mb", type=int, default=2048)
    args = parser.parse_args(argv)
    if not args.video.exists():
        print(f"{args.video} is absent; give a video of at least 300 frames.", file=sys.stderr)
        return 1
    sizes, n = ([256], 40) if args.quick else (args.sizes, args.frames)
    video = open_video(args.video)
    frames = np.ascontiguousarray(video[: min(n, len(video))])
    line = ""
    for size in sizes:
        line = measure(frames, size, args.budget_mb * 2**20)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
