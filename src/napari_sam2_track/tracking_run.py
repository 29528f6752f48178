"""Tracking one video into a session folder: what ``track`` and each batch task run.

No Qt and no Dask here. The session folder is locked for the whole run and saved every
``save_every_s`` seconds, so a run killed at any point leaves the last saved version
whole, and running again goes on from it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import UserError, os_reason
from .propagation import Direction
from .rejoin import RejoinRule
from .specks import DEFAULT_SPECKS, SpeckRule

if TYPE_CHECKING:
    from .annotation_model import AnnotationModel
    from .prompts import FramePrompt
    from .store import Annotation
    from .tracking_backend import TrackingModel
    from .video_ref import VideoRef

#: ``load_model(name, checkpoint, device, image_size)``: a loaded model.
ModelLoader = Callable[[str, "Path | None", str, "int | None"], "TrackingModel"]
Status = Literal["done", "skipped", "interrupted"]
SAVE_EVERY_S = 60.0
_MAX_SAVING_SHARE = 0.1  # saves take at most this share of a run, however long the video


@dataclass(frozen=True)
class ModelOptions:
    """Which SAM 2 model tracks, on what, at what size; None: the session's, else the
    default."""

    model: str | None = None
    checkpoint: Path | None = None
    device: str = "auto"
    image_size: int | None = None
    feature_cache_bytes: int | None = None
    features_on_disk: bool = False


@dataclass(frozen=True)
class TrackOptions:
    """What to track: the direction, an inclusive frame range, when a re-track stops,
    how often the session is saved while tracking (None: only at the end), and what
    boxes (and, with ``remove_specks``, masks) leave out as specks.

    ``retrack_range``: a range given tracks again even when nothing is new (``track``);
    without it a run with nothing new and every frame of the range tracked does no work.
    """

    direction: Direction = "forward"
    start: int | None = None
    end: int | None = None
    to_end: bool = False
    rejoin: RejoinRule = field(default_factory=RejoinRule)
    save_every_s: float | None = SAVE_EVERY_S
    retrack_range: bool = True
    specks: SpeckRule = DEFAULT_SPECKS
    remove_specks: bool = False


@dataclass(frozen=True)
class TrackOutcome:
    """How a run ended, the frames it tracked and one sentence on them."""

    status: Status
    frames: int
    summary: str


def track_video(
    video: str | Path,
    prompts: str | Path,
    out: str | Path,
    model: ModelOptions | None = None,
    options: TrackOptions | None = None,
    *,
    load_model: ModelLoader | None = None,
    on_frame: Callable[[int, int], None] | None = None,
    on_save: Callable[[int], None] | None = None,
    warn: Callable[[str], None] | None = None,
    program: str = "napari-sam2-track track",
    lock_wait_s: float = 0.0,
) -> TrackOutcome:
    """Track the objects prompted in ``prompts`` through ``video`` into the session
    folder ``out``, continuing the session there if there is one.

    Parameters
    ----------
    video : str or Path
        A video file or a folder of numbered frames.
    prompts : str or Path
        A prompts CSV (see :mod:`.prompt_csv`), or a session folder whose prompts, objects
        and masks are continued (it is read, never written).
    out : str or Path
        The session folder to write; it is locked for the run.
    model, options : ModelOptions, TrackOptions
        The model, and what to track.
    load_model : callable, optional
        Loads the model (a batch worker keeps one across videos); default: build it,
        downloading its checkpoint on first use.
    on_frame, on_save : callable, optional
        ``on_frame(done, total)`` after each frame; ``on_save(done)`` after each save
        while tracking.
    warn : callable, optional
        Takes each warning sentence (a truncated video, a damaged chunk).
    program, lock_wait_s : str, float
        Who holds the folder's lock, as another writer is told, and how long to wait
        for another writer to let it go.

    Returns
    -------
    TrackOutcome
        ``interrupted`` when stopped by Ctrl-C, after saving what was tracked.

    Raises
    ------
    UserError
        A bad input, in one sentence, found before any tracking where it can be.
    """
    from .sam2_backend import check_image_size
    from .session_lock import LOCK_FILE, session_lock
    from .store import check_session_target

    model, options = model or ModelOptions(), options or TrackOptions()
    out = Path(out)
    check_image_size(model.image_size)  # all checked before the video, model and tracking
    check_session_target(out)
    created = not out.exists()
    try:
        with session_lock(out, program, wait=lock_wait_s):
            hooks = _Hooks(load_model or _build_model, on_frame, on_save, warn or _ignore)
            return _track_locked(Path(video), Path(prompts), out, model, options, hooks)
    finally:
        left = list(out.iterdir()) if created and out.is_dir() else None
        if left is not None and [p.name for p in left] in ([], [LOCK_FILE]):
            for path in left:
                path.unlink(missing_ok=True)
            out.rmdir()  # nothing was saved: leave no folder behind


@dataclass(frozen=True)
class _Hooks:
    load_model: ModelLoader
    on_frame: Callable[[int, int], None] | None
    on_save: Callable[[int], None] | None
    warn: Callable[[str], None]


def _ignore(_: str) -> None:
    pass


def _build_model(name, checkpoint, device, image_size):
    from .sam2_backend import build_model

    return build_model(name, checkpoint, device, image_size, progress=True)


def _track_locked(
    video: Path,
    prompts_path: Path,
    out: Path,
    model: ModelOptions,
    options: TrackOptions,
    hooks: _Hooks,
) -> TrackOutcome:
    from .annotation_model import AnnotationModel
    from .engine import TrackingSession
    from .models import DEFAULT_MODEL
    from .store import is_session_folder, load_session
    from .video import open_video
    from .video_ref import VideoRef

    frames = open_video(video)
    for warning in frames.warnings:
        hooks.warn(warning)
    ref = VideoRef.from_source(frames)
    prompts, source = _read_prompts(prompts_path, ref)
    for (frame, _), prompt in prompts.items():
        prompt.check_fits(frame, ref.n_frames, ref.height, ref.width)
    here = load_session(out, ref) if is_session_folder(out) else None
    stored = here or source  # a session folder given as prompts starts a new one
    for warning in stored.warnings if stored else ():
        hooks.warn(warning)
    changed = {k: p for k, p in prompts.items() if not stored or stored.prompts.get(*k) != p}
    if stored and not changed and _nothing_to_do(stored, options):
        if here is None:  # a finished session given as prompts: copied as it is
            _copy_session(stored, out)
            return TrackOutcome("done", 0, f"Nothing to track; the session was copied to {out}.")
        return TrackOutcome(
            "skipped", 0, "Nothing new to track: the session already holds these prompts."
        )

    settings = dict(stored.model) if stored else {}
    loaded = hooks.load_model(
        model.model or settings.get("name") or DEFAULT_MODEL,
        model.checkpoint,
        model.device,
        model.image_size or settings.get("image_size"),
    )
    session = TrackingSession(
        frames,
        loaded,
        specks=options.specks,
        remove_specks=options.remove_specks,
        feature_cache_bytes=model.feature_cache_bytes,
        features_on_disk=model.features_on_disk,
    )
    if stored:
        session.restore(stored.prompts, stored.results, stored.pending_frames)
    for (frame, obj_id), prompt in changed.items():
        session.apply_prompt(frame, obj_id, prompt)
    objects = {**(source.objects if source else {}), **(here.objects if here else {})}
    record = AnnotationModel(session, ref, objects, out, here)
    run = session.propagate(
        options.direction,
        options.start,
        options.end,
        until="end" if options.to_end else "rejoin",
        rejoin=options.rejoin,
    )
    try:
        done, finished = _follow(run, record, out, options.save_every_s, hooks)
    except Exception:  # a failure mid-video keeps the frames tracked before it
        run.close()
        with contextlib.suppress(UserError, OSError):  # the failure itself is what to say
            _save_or_rescue(record, out)
        raise
    _save_or_rescue(record, out)
    return TrackOutcome("done" if finished else "interrupted", done, run.summary())


def _read_prompts(
    path: Path, video: VideoRef
) -> tuple[dict[tuple[int, int], FramePrompt], Annotation | None]:
    """The prompts of a CSV, or of a session folder with the session itself."""
    from .prompt_csv import read_prompts_csv
    from .prompts import PromptError
    from .store import is_session_folder, load_session

    if path.is_dir():
        if not is_session_folder(path):
            raise PromptError(
                f"{path} is a folder but not a session folder; give a prompts CSV or a "
                "session folder."
            )
        source = load_session(path, video)
        return dict(source.prompts.items()), source
    return read_prompts_csv(path), None


def _nothing_to_do(stored: Annotation, options: TrackOptions) -> bool:
    """Whether a run with no new prompt would change nothing: no frame in its range
    pending, and every frame its passes visit tracked for every prompted object."""
    from . import propagation as plan

    if options.retrack_range and (options.start is not None or options.end is not None):
        return False
    low, high = plan.frame_range(options.start, options.end, stored.results.n_frames)
    if any(low <= f <= high for f in stored.pending_frames):
        return False
    prompted = [f for f in stored.prompts.frames() if low <= f <= high]
    passes = plan.plan_passes(options.direction, low, high, prompted)
    visited = set().union(*(plan.pass_frames(*p) for p in passes))
    return all(
        visited <= set(stored.results.frames_of(obj_id)) for obj_id in stored.prompts.object_ids()
    )


def _copy_session(annotation: Annotation, out: Path) -> None:
    from .store import save_session

    save_session(out, annotation, expected_version=None, wait=0)


def _follow(run, record: AnnotationModel, out: Path, every: float | None, hooks: _Hooks):
    """Frames tracked, and whether the run finished (else Ctrl-C stopped it); saves
    while tracking, spaced so saving stays a small share of the run."""
    done, saved_at, spacing = 0, time.monotonic(), every
    try:
        for _ in run:
            done += 1
            if hooks.on_frame:
                hooks.on_frame(done, run.total)
            if spacing is not None and time.monotonic() - saved_at >= spacing:
                began = time.monotonic()
                if _checkpoint(record, out, hooks) and hooks.on_save:
                    hooks.on_save(done)
                saved_at = time.monotonic()
                spacing = max(every, (saved_at - began) / _MAX_SAVING_SHARE)
    except KeyboardInterrupt:
        run.close()
        return done, False
    if hooks.on_frame:
        hooks.on_frame(done, done)  # a re-track that re-joined ends early, and complete
    return done, True


def _checkpoint(record: AnnotationModel, out: Path, hooks: _Hooks) -> bool:
    """Save while tracking; a folder that cannot take it now is said and tracking goes
    on (the save at the end rescues the frames elsewhere if it still cannot)."""
    try:
        record.save(out)
    except OSError as exc:
        hooks.warn(
            f"{out} could not be saved while tracking ({os_reason(exc)}); tracking goes on."
        )
        return False
    return True


def _save_or_rescue(record: AnnotationModel, out: Path) -> None:
    """Save the session; if the folder cannot take it (a full disk), save it elsewhere
    and say where, so the tracked frames are not lost. What is still to do (a stopped
    run's rest, corrections outside the range tracked) stays pending."""
    from .autosave import rescue_folder
    from .store import save_session

    try:
        record.save(out)
    except OSError as exc:
        annotation = record.annotation()
        rescue = rescue_folder(record.video)
        try:
            save_session(rescue, annotation, expected_version=None)
        except OSError as again:
            raise UserError(
                f"{out} could not be written ({os_reason(exc)}), nor could {rescue} "
                f"({os_reason(again)}); the tracked frames are lost."
            ) from exc
        raise UserError(
            f"{out} could not be written ({os_reason(exc)}); the tracked frames were saved to "
            f"{rescue} instead: make room, then move that folder to where you want it."
        ) from exc
