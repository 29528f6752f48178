"""Batch figures: videos per hour and frames per second with 1 and 2 local workers, and
each worker's peak RSS.

    python -u benchmarks/batch.py [--videos 4] [--frames 16] [--image-size 256]
                                  [--workers 1 2]

The clips are stretches of ``../shared/data/videos/02_cups.mp4`` (generated clips when
it is absent), each with one point on one object; SAM 2.1 tiny with random weights
(compute per frame is that of trained weights), on the CPU. Each run starts its own
local cluster, so its wall time includes starting the workers and loading the model
once per worker; "tracking" counts from the first frame tracked to the last.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

SHARED_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "02_cups.mp4"


def make_clips(folder: Path, count: int, frames: int) -> list[Path]:
    """``count`` clips of ``frames`` frames each, one after another in the real video."""
    import subprocess

    clips = []
    for i in range(count):
        path = folder / f"clip{i}.mp4"
        source = (
            ["-ss", f"{i * frames / 30:.3f}", "-i", str(SHARED_VIDEO)]
            if SHARED_VIDEO.exists()
            else ["-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30,hue=h={40 * i}"]
        )
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
        subprocess.run(
            [*command, *source, "-frames:v", str(frames), "-an", "-c:v", "libx264", str(path)],
            check=True,
        )
        clips.append(path)
    return clips


def peak_rss_mib(pid: int) -> float:
    """A process's peak resident memory (Linux), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(jobs, out: Path, model, workers: int) -> dict:
    from napari_sam2_track.batch import run_batch

    peaks: dict[int, float] = {}
    first_frame: list[float] = []

    def on_event(event) -> None:
        if event.total and not first_frame:
            first_frame.append(time.perf_counter())
        peaks[event.worker_pid] = max(
            peaks.get(event.worker_pid, 0.0), peak_rss_mib(event.worker_pid)
        )

    began = time.perf_counter()
    results = run_batch(jobs, out, model, workers=workers, on_event=on_event)
    ended = time.perf_counter()
    failed = [r for r in results if r.status != "done"]
    if failed:
        raise SystemExit(f"{failed[0].name} did not finish: {failed[0].error}")
    frames = sum(r.frames for r in results)
    tracking = ended - (first_frame[0] if first_frame else began)
    return {
        "wall_s": ended - began,
        "tracking_s": tracking,
        "frames": frames,
        "videos": len(results),
        "peak_rss_mib": sorted(peaks.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import torch

    from napari_sam2_track.batch_jobs import BatchJob
    from napari_sam2_track.sam2_backend import build_model
    from napari_sam2_track.tracking_run import ModelOptions

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        torch.manual_seed(0)
        model = build_model(image_size=args.image_size, random_weights=True, device="cpu")
        checkpoint = folder / "random_tiny.pt"
        torch.save({"model": model.predictor.state_dict()}, checkpoint)
        del model
        clips = make_clips(folder, args.videos, args.frames)
        jobs = []
        for clip in clips:
            prompts = clip.with_suffix(".csv")
            prompts.write_text("frame,obj_id,x,y,label\n0,1,640,360,1\n")
            jobs.append(BatchJob(clip.stem, clip, prompts))
        options = ModelOptions(checkpoint=checkpoint, device="cpu", image_size=args.image_size)
        source = SHARED_VIDEO.name if SHARED_VIDEO.exists() else "generated 1280x720"
        print(
            f"{args.videos} clips of {args.frames} frames ({source}), {args.image_size} px, "
            f"random weights, CPU, {torch.get_num_threads()} cores"
        )
        header = ("workers", "wall s", "videos/h", "frames/s", "tracking frames/s")
        widths = (7, 7, 9, 9, 18)
        print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)), end="")
        print("  peak RSS per worker (MiB)")
        for workers in args.workers:
            figures = run(jobs, folder / f"out-{workers}", options, workers)
            wall = figures["wall_s"]
            rss = ", ".join(f"{m:.0f}" for m in figures["peak_rss_mib"])
            print(
                f"{workers:>7} {wall:>7.1f} {figures['videos'] / wall * 3600:>9.0f} "
                f"{figures['frames'] / wall:>9.2f} "
                f"{figures['frames'] / figures['tracking_s']:>18.2f}  {rss}"
            )


if __name__ == "__main__":
    main()
