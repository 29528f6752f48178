"""The ``batch`` command line: its options, and bars over videos and frames."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .batch_worker import BatchEvent


def add_batch_parser(commands: argparse._SubParsersAction) -> None:
    """The ``batch`` command, with ``track``'s model and tracking options."""
    from .batch_jobs import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
    from .cli import add_model_options, add_tracking_options

    batch = commands.add_parser(
        "batch",
        help="track many videos on a Dask cluster, one session folder each",
        description="Track every video listed in JOBS (a CSV with the columns "
        f"{', '.join(REQUIRED_COLUMNS)} and optionally {', '.join(OPTIONAL_COLUMNS)}; "
        "paths relative to the CSV) on a Dask cluster, writing OUT/<name>.session per "
        "video and OUT/summary.csv. Run again to skip the finished videos and go on with "
        "the others.",
    )
    batch.add_argument("jobs", type=Path, metavar="JOBS", help="the jobs CSV, one row per video")
    batch.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="the folder for the session folders, exports and summary.csv",
    )
    add_model_options(batch)
    add_tracking_options(batch)
    where = batch.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes of the local cluster (default: one per GPU, else one)",
    )
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786)",
    )
    batch.add_argument(
        "--export",
        type=_formats,
        default=(),
        metavar="FORMATS",
        help="comma-separated export formats written per video into DIR/exports/<format>/",
    )


def _formats(text: str) -> tuple[str, ...]:
    from .exports import EXPORTERS

    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in formats if f not in EXPORTERS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(
            f"{(unknown or [text])[0]!r} is not an export format; choose from "
            f"{', '.join(EXPORTERS)}"
        )
    return formats


def run_batch(args: argparse.Namespace) -> int:
    """Run ``batch``: 0 when every video is done or skipped, 1 when one failed."""
    from .batch import run_batch as run
    from .batch_jobs import read_jobs_csv, summary_path
    from .cli import model_options, track_options

    jobs = read_jobs_csv(args.jobs)  # checked whole before a cluster starts
    with _batch_bars(len(jobs)) as on_event:
        results = run(
            jobs,
            args.out,
            model_options(args),
            track_options(args),
            scheduler=args.scheduler,
            workers=args.workers,
            exports=args.export,
            on_event=on_event,
            on_dashboard=lambda link: print(f"Dask's dashboard: {link}", file=sys.stderr),
        )
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    for result in results:
        if result.status == "failed":
            print(f"napari-sam2-track: {result.name}: {result.error}", file=sys.stderr)
    print(
        f"{counts['done']} done, {counts['skipped']} skipped (done before), "
        f"{counts['failed']} failed; see {summary_path(args.out)}.",
        file=sys.stderr,
    )
    return 1 if counts["failed"] else 0


@contextlib.contextmanager
def _batch_bars(n_videos: int) -> Iterator[Callable[[BatchEvent], None]]:
    """Bars over videos and over frames, fed by the tasks' events."""
    from tqdm import tqdm

    progress: dict[str, tuple[int, int]] = {}
    with (
        tqdm(total=n_videos, unit="video", desc="videos", file=sys.stderr, position=0) as videos,
        tqdm(total=0, unit="frame", desc="frames", file=sys.stderr, position=1) as frames,
    ):

        def on_event(event: BatchEvent) -> None:
            if event.result is not None:
                videos.update()
                done, _ = progress.get(event.name, (0, 0))
                progress[event.name] = (done, done)
            elif event.total:
                progress[event.name] = (event.done, event.total)
            frames.total = sum(total for _, total in progress.values())
            frames.update(sum(done for done, _ in progress.values()) - frames.n)

        yield on_event
