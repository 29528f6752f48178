"""``napari-sam2-track``: the tracking engine from a shell, for batch work.

Every failure a user can cause (a :class:`~napari_sam2_track.errors.UserError`, or
running out of memory) ends with one sentence on stderr and exit status 1 (2 for a
malformed command line, 130 when interrupted after saving what was done); anything else
is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from . import __version__
from .errors import UserError

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130
BUG_TRACKER = "https://github.com/napari-sam2-track/napari-sam2-track/issues"
_OOM_PHRASES = ("out of memory", "can't allocate memory")


def build_parser() -> argparse.ArgumentParser:
    from .models import CACHE_ENV, DEFAULT_MODEL
    from .propagation import DIRECTIONS
    from .rejoin import RejoinRule

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
        "or a CSV napari wrote for a Points layer with label and obj_id features",
    )
    track.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="SESSION_DIR",
        help="the session folder to write (an existing one is continued)",
    )
    track.add_argument(
        "--model",
        help=f"model name (default {DEFAULT_MODEL}, or the one the session used); "
        "see 'napari-sam2-track models'",
    )
    track.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="a local weights file for --model's config, instead of the cached download",
    )
    track.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps"
    )
    track.add_argument(
        "--image-size",
        type=int,
        metavar="N",
        help="SAM 2's input size, a multiple of 32 (default 1024; smaller is faster and coarser)",
    )
    track.add_argument(
        "--feature-cache-mb",
        type=_megabytes,
        metavar="MB",
        help="image features kept so no frame is encoded twice (default: a quarter of the "
        "free memory, at most 4096; 0 keeps none)",
    )
    track.add_argument(
        "--features-on-disk",
        action="store_true",
        help="also keep image features in the user cache folder, so running again on "
        "the same video, model and --image-size encodes no frame twice",
    )
    track.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="forward",
        help="forward from the first new prompt, backward from the last, or both",
    )
    track.add_argument("--start", type=int, metavar="N", help="first frame to track (0-based)")
    track.add_argument("--end", type=int, metavar="N", help="last frame to track (inclusive)")
    track.add_argument(
        "--to-end",
        action="store_true",
        help="re-track to the end of the frames, instead of stopping where the new masks "
        "re-join the previous ones",
    )
    track.add_argument(
        "--rejoin-iou",
        type=float,
        default=RejoinRule.iou,
        metavar="X",
        help=f"IoU at which a re-tracked mask matches its previous one (default {RejoinRule.iou})",
    )
    track.add_argument(
        "--rejoin-frames",
        type=int,
        default=RejoinRule.frames,
        metavar="N",
        help="frames in a row that must match for a re-track to stop "
        f"(default {RejoinRule.frames})",
    )

    commands.add_parser(
        "models",
        help="list the models, their sizes and whether each is downloaded",
        description=f"Checkpoints are cached in a per-user folder; set {CACHE_ENV} to move it.",
    )
    download = commands.add_parser("download", help="download a model's checkpoint now")
    download.add_argument("model", help="a name from 'napari-sam2-track models'")
    _add_export_parser(commands)
    return parser


def _megabytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of megabytes, 0 or more")
    return value


def _add_export_parser(commands) -> None:
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
        "models": run_models,
        "download": run_download,
        "export": run_export,
    }
    try:
        return handlers[args.command](args)
    except UserError as exc:
        _say(_sentence(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _say("interrupted.")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, unless the machine itself refused
        problem = _machine_problem(exc)
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


def _sentence(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:1].upper() + text[1:]


def _machine_problem(exc: Exception) -> str | None:
    """A sentence for running out of memory or a file the system refused, else None."""
    if _out_of_memory(exc):
        return (
            "Tracking ran out of memory; try a smaller --image-size, a smaller model "
            "or another --device."
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename} could not be used ({(exc.strerror or str(exc)).lower()})."
    return None


def _out_of_memory(exc: Exception) -> bool:
    # torch is looked up, not imported: if it was never imported, it raised nothing.
    torch = sys.modules.get("torch")
    torch_oom = getattr(torch, "OutOfMemoryError", None) if torch else None
    if isinstance(exc, MemoryError) or (torch_oom and isinstance(exc, torch_oom)):
        return True
    text = str(exc).lower()  # CPU and MPS allocators raise a plain RuntimeError
    return isinstance(exc, RuntimeError) and any(s in text for s in _OOM_PHRASES)


def run_track(args: argparse.Namespace) -> int:
    from .sam2_backend import check_image_size
    from .session_lock import LOCK_FILE, session_lock
    from .store import check_session_target

    check_image_size(args.image_size)  # all checked before the video, model and tracking
    check_session_target(args.out)
    created = not args.out.exists()
    try:
        with session_lock(args.out, "napari-sam2-track track", wait=0):
            return _track_locked(args)
    finally:
        left = list(args.out.iterdir()) if created and args.out.is_dir() else None
        if left is not None and [p.name for p in left] in ([], [LOCK_FILE]):
            for path in left:
                path.unlink(missing_ok=True)
            args.out.rmdir()  # nothing was saved: leave no folder behind


def _track_locked(args: argparse.Namespace) -> int:
    from .annotation_model import AnnotationModel
    from .engine import TrackingSession
    from .prompt_csv import read_prompts_csv
    from .rejoin import RejoinRule
    from .store import is_session_folder, load_session
    from .video import open_video
    from .video_ref import VideoRef

    frames = open_video(args.video)
    for warning in frames.warnings:
        _warn(warning)
    video = VideoRef.from_source(frames)
    prompts = read_prompts_csv(args.prompts)
    for (frame, _), prompt in prompts.items():
        prompt.check_fits(frame, video.n_frames, video.height, video.width)
    stored = load_session(args.out, video) if is_session_folder(args.out) else None
    for warning in stored.warnings if stored else ():
        _warn(warning)
    settings = dict(stored.model) if stored else {}
    model = args.model or settings.get("name")
    image_size = args.image_size or settings.get("image_size")

    cache_mb = args.feature_cache_mb
    session = TrackingSession.create(
        frames,
        model,
        args.checkpoint,
        args.device,
        image_size,
        progress=True,
        feature_cache_bytes=None if cache_mb is None else cache_mb * 2**20,
        features_on_disk=args.features_on_disk,
    )
    if stored:
        session.restore(stored.prompts, stored.results, stored.pending_frames)
    changed = {k: p for k, p in prompts.items() if not stored or stored.prompts.get(*k) != p}
    for (frame, obj_id), prompt in changed.items():
        session.set_prompt(frame, obj_id, prompt.points, prompt.labels)

    objects = stored.objects if stored else {}
    record = AnnotationModel(session, video, objects, args.out, stored)
    ranged = args.start is not None or args.end is not None
    if stored and not changed and not session.pending_frames and not ranged:
        print("Nothing new to track: the session already holds these prompts.", file=sys.stderr)
        return 0
    run = session.propagate(
        args.direction,
        args.start,
        args.end,
        until="end" if args.to_end else "rejoin",
        rejoin=RejoinRule(args.rejoin_iou, args.rejoin_frames),
    )
    done = _with_progress(run)
    _save_or_rescue(record, args.out, finished=done is not None)
    if done is None:
        print(f"Interrupted; saved what was tracked to {args.out}.", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(run.summary(), file=sys.stderr)
    print(f"Tracked {done} frames; session saved to {args.out}.", file=sys.stderr)
    return 0


def _save_or_rescue(record, out: Path, finished: bool) -> None:
    """Save the session; if the folder cannot take it (a full disk), save it elsewhere
    and say where, so the tracked frames are not lost."""
    from .autosave import rescue_folder
    from .store import save_session

    try:
        record.save(out, clear_pending=finished)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        annotation = record.annotation(clear_pending=finished)
        rescue = rescue_folder(record.video)
        try:
            save_session(rescue, annotation, expected_version=None)
        except OSError as again:
            raise UserError(
                f"{out} could not be written ({reason}), nor could {rescue} "
                f"({(again.strerror or str(again)).lower()}); the tracked frames are lost."
            ) from exc
        raise UserError(
            f"{out} could not be written ({reason}); the tracked frames were saved to "
            f"{rescue} instead: make room, then move that folder to where you want it."
        ) from exc


def _warn(warning: str) -> None:
    print(f"napari-sam2-track: warning: {warning}", file=sys.stderr)


def _with_progress(run) -> int | None:
    """Frames tracked, or None when interrupted (Ctrl-C)."""
    from tqdm import tqdm

    done = 0
    with tqdm(total=run.total, unit="frame", desc="tracking", file=sys.stderr) as bar:
        try:
            for _ in run:
                done += 1
                bar.update()
        except KeyboardInterrupt:
            run.close()
            return None
        bar.total = done  # a re-track that re-joined ends early, and complete
        bar.refresh()
    return done


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
    from tqdm import tqdm

    from .exports import check_target, export
    from .store import load_session

    check_target(args.format, args.out, args.images)  # before reading the session
    annotation = load_session(args.session)
    for warning in annotation.warnings:
        _warn(warning)
    told = len(annotation.warnings)
    bars: list[tqdm] = []  # opened on the first frame: a refused export prints just its reason

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="frame", desc="exporting", file=sys.stderr))
        bars[0].update(done - bars[0].n)

    try:
        out = export(annotation, args.format, args.out, progress, write_images=args.images)
    finally:
        for bar in bars:
            bar.close()
    for warning in annotation.warnings[told:]:  # masks found damaged as they were read
        _warn(warning)
    print(f"Exported {args.session} as {args.format} to {out}.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
