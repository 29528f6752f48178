"""``napari-sam2-track``: the tracking engine from a shell, for batch work.

Every failure a user can cause (a :class:`~napari_sam2_track.errors.UserError`, or
running out of memory) ends with one sentence on stderr and exit status 1 (2 for a
malformed command line, 130 when interrupted after saving what was done); anything else
is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .errors import BUG_TRACKER, UserError, machine_problem, sentence

if TYPE_CHECKING:
    from .tracking_run import ModelOptions, TrackOptions

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


def build_parser() -> argparse.ArgumentParser:
    from .models import CACHE_ENV
    from .propagation import DIRECTIONS

    parser = argparse.ArgumentParser(
        prog="napari-sam2-track",
        description="Track objects through videos with SAM 2, without the GUI.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    track = commands.add_parser(
        "track",
        help="track the objects prompted in a CSV through a video",
        description="Track objects through VIDEO from the points in PROMPTS, writing a "
        "session folder. Run again on the same folder with more prompts to continue it.",
    )
    track.add_argument("video", type=Path, help="a video file or a folder of numbered frames")
    track.add_argument(
        "--prompts",
        type=Path,
        required=True,
        metavar="CSV",
        help="points as frame,obj_id,x,y,label (label 1 = on the object, 0 = not on it), "
        "a CSV napari wrote for a Points layer with label and obj_id features, or a "
        "session folder whose prompts to continue (it is only read)",
    )
    track.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="SESSION_DIR",
        help="the session folder to write (an existing one is continued)",
    )
    add_model_options(track)
    track.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="forward",
        help="forward from the first new prompt, backward from the last, or both",
    )
    track.add_argument("--start", type=int, metavar="N", help="first frame to track (0-based)")
    track.add_argument("--end", type=int, metavar="N", help="last frame to track (inclusive)")
    add_tracking_options(track)
    add_batch_parser(commands)

    commands.add_parser(
        "models",
        help="list the models, their sizes and whether each is downloaded",
        description=f"Checkpoints are cached in a per-user folder; set {CACHE_ENV} to move it.",
    )
    download = commands.add_parser("download", help="download a model's checkpoint now")
    download.add_argument("model", help="a name from 'napari-sam2-track models'")
    _add_export_parser(commands)
    return parser


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The model options ``track`` and ``batch`` share."""
    from .models import DEFAULT_MODEL

    parser.add_argument(
        "--model",
        help=f"model name (default {DEFAULT_MODEL}, or the one the session used); "
        "see 'napari-sam2-track models'",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="a local weights file for --model's config, instead of the cached download",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps"
    )
    parser.add_argument(
        "--image-size",
        type=int,
        metavar="N",
        help="SAM 2's input size, a multiple of 32 (default 1024; smaller is faster and coarser)",
    )
    parser.add_argument(
        "--feature-cache-mb",
        type=_megabytes,
        metavar="MB",
        help="image features kept so no frame is encoded twice (default: a quarter of the "
        "free memory, at most 4096; 0 keeps none)",
    )
    parser.add_argument(
        "--features-on-disk",
        action="store_true",
        help="also keep image features in the user cache folder, so running again on "
        "the same video, model and --image-size encodes no frame twice",
    )


def add_tracking_options(parser: argparse.ArgumentParser) -> None:
    """The options on how to track that ``track`` and ``batch`` share."""
    from .rejoin import RejoinRule
    from .specks import DEFAULT_SPECKS
    from .tracking_run import SAVE_EVERY_S

    parser.add_argument(
        "--to-end",
        action="store_true",
        help="re-track to the end of the frames, instead of stopping where the new masks "
        "re-join the previous ones",
    )
    parser.add_argument(
        "--rejoin-iou",
        type=float,
        default=RejoinRule.iou,
        metavar="X",
        help=f"IoU at which a re-tracked mask matches its previous one (default {RejoinRule.iou})",
    )
    parser.add_argument(
        "--rejoin-frames",
        type=int,
        default=RejoinRule.frames,
        metavar="N",
        help="frames in a row that must match for a re-track to stop "
        f"(default {RejoinRule.frames})",
    )
    parser.add_argument(
        "--speck-area",
        type=float,
        default=DEFAULT_SPECKS.area_share,
        metavar="X",
        help="a piece of a mask this small next to its largest piece (a share of its area) "
        f"is a speck when also far from it; boxes leave specks out (default "
        f"{DEFAULT_SPECKS.area_share}; 0: boxes span every pixel)",
    )
    parser.add_argument(
        "--speck-gap",
        type=float,
        default=DEFAULT_SPECKS.gap_share,
        metavar="X",
        help="far: more than this share of the largest piece's longer side away from its "
        f"box (default {DEFAULT_SPECKS.gap_share})",
    )
    parser.add_argument(
        "--remove-specks",
        action="store_true",
        help="also take specks out of the saved masks (kept as SAM 2 gave them otherwise)",
    )
    parser.add_argument(
        "--save-every",
        type=_seconds,
        default=SAVE_EVERY_S,
        metavar="SECONDS",
        help=f"save the session this often while tracking, so a killed run loses at most "
        f"that much and running again goes on from it (default {SAVE_EVERY_S:g}; 0: only "
        "at the end; long sessions save less often, to keep saving under a tenth of the run)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, 0 or more")
    return value


def add_batch_parser(commands: argparse._SubParsersAction) -> None:
    from .batch_cli import add_batch_parser as add

    add(commands)


def _run_batch(args: argparse.Namespace) -> int:
    from .batch_cli import run_batch

    return run_batch(args)


def _megabytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of megabytes, 0 or more")
    return value


def _add_export_parser(commands: argparse._SubParsersAction) -> None:
    from .exports import EXPORTERS

    formats = "; ".join(f"{name}: {e.description}" for name, e in EXPORTERS.items())
    export = commands.add_parser(
        "export",
        help="write a session's masks and boxes in a dataset format",
        description="Write the annotations of SESSION_DIR in a format that dataset and "
        "evaluation tools read. The output appears only once it is complete.",
    )
    export.add_argument("session", type=Path, metavar="SESSION_DIR", help="a session folder")
    export.add_argument("--format", required=True, metavar="FORMAT", help=formats)
    export.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="PATH",
        help="the file or folder to write (an earlier export there is replaced)",
    )
    images = ", ".join(name for name, e in EXPORTERS.items() if e.images)
    export.add_argument(
        "--images",
        action="store_true",
        help=f"also write the video's frames as JPEG files ({images})",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "track": run_track,
        "batch": _run_batch,
        "models": run_models,
        "download": run_download,
        "export": run_export,
    }
    try:
        return handlers[args.command](args)
    except UserError as exc:
        _say(sentence(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _say("interrupted.")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, unless the machine itself refused
        problem = machine_problem(exc)
        if problem is None:
            traceback.print_exc()
            problem = (
                f"this is a bug in napari-sam2-track {__version__}; please report it, "
                f"with the traceback above, at {BUG_TRACKER}."
            )
        _say(problem)
        return EXIT_ERROR


def _say(sentence: str) -> None:
    print(f"napari-sam2-track: {sentence}", file=sys.stderr)


def run_track(args: argparse.Namespace) -> int:
    from .tracking_run import track_video

    with _frame_bar("tracking") as on_frame:
        outcome = track_video(
            args.video,
            args.prompts,
            args.out,
            model_options(args),
            track_options(args),
            on_frame=on_frame,
            warn=_warn,
        )
    if outcome.status == "skipped":
        print(outcome.summary, file=sys.stderr)
        return 0
    if outcome.status == "interrupted":
        print(f"Interrupted; saved what was tracked to {args.out}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(outcome.summary, file=sys.stderr)
    print(f"Tracked {outcome.frames} frames; session saved to {args.out}.", file=sys.stderr)
    return 0


def model_options(args: argparse.Namespace) -> ModelOptions:
    """The model options of ``track`` and ``batch``."""
    from .tracking_run import ModelOptions

    cache_mb = args.feature_cache_mb
    return ModelOptions(
        args.model,
        args.checkpoint,
        args.device,
        args.image_size,
        feature_cache_bytes=None if cache_mb is None else cache_mb * 2**20,
        features_on_disk=args.features_on_disk,
    )


def track_options(args: argparse.Namespace) -> TrackOptions:
    """What ``track`` (and each video of ``batch``) tracks and how often it saves."""
    from .rejoin import RejoinRule
    from .specks import SpeckRule
    from .tracking_run import TrackOptions

    return TrackOptions(
        direction=getattr(args, "direction", "forward"),
        start=getattr(args, "start", None),
        end=getattr(args, "end", None),
        to_end=args.to_end,
        rejoin=RejoinRule(args.rejoin_iou, args.rejoin_frames),
        save_every_s=args.save_every or None,
        specks=SpeckRule(args.speck_area, args.speck_gap),
        remove_specks=args.remove_specks,
    )


@contextlib.contextmanager
def _frame_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress callback ``(done, total)`` drawing a bar on stderr from the first
    frame on, so a run refused at once prints just its reason."""
    from tqdm import tqdm

    bars: list[tqdm] = []

    def on_frame(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="frame", desc=description, file=sys.stderr))
        bar = bars[0]
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        yield on_frame
    finally:
        for bar in bars:
            bar.close()


def _warn(warning: str) -> None:
    print(f"napari-sam2-track: warning: {warning}", file=sys.stderr)


def run_models(args: argparse.Namespace) -> int:
    from .models import cache_dir, list_models

    print(f"{'model':24} {'size':>9}  {'cached':6}  description")
    for row in list_models():
        size = f"{row['size_bytes'] / 1e6:.0f} MB" if row["size_bytes"] else "?"
        cached = "yes" if row["cached"] else "no"
        print(f"{row['name']:24} {size:>9}  {cached:6}  {row['description']}")
    print(f"\ncache folder: {cache_dir()}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from .models import ensure_checkpoint, get_model

    path = ensure_checkpoint(get_model(args.model), progress=True)
    print(path)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from .exports import check_target, export
    from .store import load_session

    check_target(args.format, args.out, args.images)  # before reading the session
    annotation = load_session(args.session)
    for warning in annotation.warnings:
        _warn(warning)
    told = len(annotation.warnings)
    with _frame_bar("exporting") as progress:
        out = export(annotation, args.format, args.out, progress, write_images=args.images)
    for warning in annotation.warnings[told:]:  # masks found damaged as they were read
        _warn(warning)
    print(f"Exported {args.session} as {args.format} to {out}.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
