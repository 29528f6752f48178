"""The annotation loop's waits: a click, a propagation, and the re-propagation after a
late correction, as before (to the end, encoding every frame again) and now (features
kept, re-tracking until the track re-joins). Prints figures; not a test.

    .venv/bin/python benchmarks/correction_loop.py --quick
    .venv/bin/python benchmarks/correction_loop.py [VIDEO] [--sizes 512 1024] [--frames N]

The last line reads ``identical=yes|no retrack_speedup=X cache_speedup=Y
click_after_prefetch_s=Z`` for the last size measured. SAM 2.1 tiny with random weights
(no download here): the encoder and decoder cost what trained weights cost; where the
track re-joins depends on the weights, so the re-join figure is indicative only.

Objects are tracked once; each re-propagation then runs in a session reopened from it
(its prompts and masks, and its features kept on disk), as after reopening a saved
session: SAM 2 has by then dropped the memory of frames long behind, in both cases.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from napari_sam2_track.engine import TrackingSession
from napari_sam2_track.results import TrackResults
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


def copied(results: TrackResults) -> TrackResults:
    copy = TrackResults(results.n_frames, results.height, results.width)
    for frame, entries in results:
        for obj_id, entry in entries.items():
            copy.set(frame, obj_id, entry)
    return copy


def rss() -> int:
    """Resident memory, once freed heap went back to the system: what is in use now."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # glibc only
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss


def checkpoint_model(size: int, folder: Path):
    """SAM 2.1 tiny with random weights, loaded from a file so features may go to disk."""
    torch.manual_seed(0)
    path = folder / "random_tiny.pt"
    state = build_model(image_size=size, random_weights=True, device="cpu").predictor.state_dict()
    torch.save({"model": state}, path)
    return build_model(checkpoint=path, image_size=size, device="cpu")


def click_times(frames, model, budget: int, point) -> tuple[float, float]:
    """A click on a frame never encoded, and on one the idle prefetch has encoded."""
    clicks = TrackingSession(frames, model, feature_cache_bytes=budget)
    cold, _ = timed(lambda: clicks.set_prompt(3, 1, points=[point], labels=[1]))
    clicks.tracker.encode(5)  # what the idle prefetch does while frame 5 is on screen
    warm, _ = timed(lambda: clicks.set_prompt(5, 1, points=[point], labels=[1]))
    return cold, warm


def measure(frames, size: int, budget: int, folder: Path) -> str:
    model = checkpoint_model(size, folder)
    store = folder / f"features_{size}"
    n, height, width = len(frames), frames.shape[1], frames.shape[2]
    click = (0, (width / 2, height / 2))
    fix = (int(n * 0.7), (width / 4, height / 4))

    cold, warm = click_times(frames, model, budget, click[1])

    start = rss()
    tracked = TrackingSession(frames, model, feature_cache_bytes=budget, features_on_disk=store)
    tracked.set_prompt(click[0], 1, points=[click[1]], labels=[1])
    full, _ = timed(lambda: list(tracked.propagate()))
    tracked_grown, tracked_kept = rss() - start, tracked.tracker.features.nbytes
    progress(f"{size} px: full propagation {full:.0f} s")

    def corrected(cache_bytes: int, until: str):
        """Reopen the tracked session, correct a late frame, and re-propagate."""
        session = TrackingSession(
            frames, model, feature_cache_bytes=cache_bytes, features_on_disk=store
        )
        session.restore(tracked.prompts.copy(), copied(tracked.results))
        session.set_prompt(fix[0], 1, points=[click[1], fix[1]], labels=[1, 0])
        run = session.propagate(until=until)
        seconds, _ = timed(lambda: list(run))
        progress(f"{size} px: re-propagation ({cache_bytes=}, {until=}) {seconds:.0f} s")
        return session, seconds, run

    before, old, _ = corrected(0, "end")
    uncached = rss()  # model, frames, the tracked session and one without a cache
    cached, cache_only, _ = corrected(budget, "end")
    grown = rss() - uncached  # a second session, and its cache
    _, new, run = corrected(budget, "rejoin")
    identical = masks(before) == masks(cached)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    kept = cached.tracker.features.nbytes
    print(f"\n{size} px, {n} frames of {width}x{height}, correction on frame {fix[0]}")
    print(f"  click on a cold frame        {cold:8.2f} s")
    print(f"  click after prefetch         {warm:8.2f} s")
    print(f"  full propagation             {full:8.2f} s ({full / n:.2f} s/frame)")
    print(f"  re-propagation, as before    {old:8.2f} s (to the end, encoding again)")
    print(f"  re-propagation, cache only   {cache_only:8.2f} s (to the end)")
    print(f"  re-propagation, now          {new:8.2f} s ({run.summary()})")
    print(f"  masks identical, cache on/off: {'yes' if identical else 'no'}")
    mib = 2**20
    print(f"  tracking all frames: features kept {tracked_kept / mib:.0f} MiB of a ", end="")
    print(f"{budget / mib:.0f} MiB budget; RSS grew {tracked_grown / mib:.0f} MiB")
    print(f"  re-propagating (reopened): features kept {kept / mib:.0f} MiB; ", end="")
    print(f"RSS grew {grown / mib:.0f} MiB with them (peak RSS {peak / mib:.0f} MiB in all)")
    return (
        f"identical={'yes' if identical else 'no'} retrack_speedup={old / new:.1f} "
        f"cache_speedup={old / cache_only:.1f} click_after_prefetch_s={warm:.2f}"
    )


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


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
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            line = measure(frames, size, args.budget_mb * 2**20, Path(folder))
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
