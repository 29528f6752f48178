"""One batch task: track one video on a Dask worker, keeping the model across videos.

Whatever goes wrong with a video becomes its row in the summary, so one bad video
never stops the others; only a worker that dies leaves the task to Dask, which runs it
again elsewhere and the new run goes on from the last save.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .batch_jobs import EXPORTS_FOLDER, BatchJob, BatchResult
from .errors import BUG_TRACKER, UserError, machine_problem, sentence
from .tracking_run import ModelOptions, TrackOptions, track_video

log = logging.getLogger(__name__)
_REPORT_EVERY_S = 0.25  # progress events per video, at most this often
#: How long a task waits for its session folder's lock: a rerun may start while the run
#: it replaces, on a worker the scheduler lost, is still saving.
LOCK_WAIT_S = 120.0


@dataclass(frozen=True)
class BatchSettings:
    """What every task of a batch gets: the model, how to track, the exports, the torch
    threads per worker (None: the cores the worker may use over its task slots) and
    the Dask event topic progress goes to (None: none)."""

    model: ModelOptions = field(default_factory=ModelOptions)
    track: TrackOptions = field(default_factory=TrackOptions)
    exports: tuple[str, ...] = ()
    torch_threads: int | None = None
    topic: str | None = None


@dataclass(frozen=True)
class BatchEvent:
    """A task's progress: ``done`` of ``total`` frames; ``saved`` after a save while
    tracking; ``finished`` with the video's result."""

    name: str
    done: int = 0
    total: int = 0
    saved: bool = False
    worker_pid: int = 0
    result: BatchResult | None = None


def run_job(job: BatchJob, out: str | Path, settings: BatchSettings) -> BatchResult:
    """Track one job's video into ``out/<name>.session`` and write its exports.

    Parameters
    ----------
    job : BatchJob
        The video, its prompts, range and direction.
    out : str or Path
        The batch's output folder.
    settings : BatchSettings
        What every task of the batch gets.

    Returns
    -------
    BatchResult
        Its summary row: any failure of the video is one, with its sentence.
    """
    started = time.perf_counter()
    report = _Reporter(settings.topic, job.name)

    def result(status: str, frames: int = 0, error: str = "") -> BatchResult:
        seconds = time.perf_counter() - started
        return BatchResult(job.name, str(job.video), status, frames, seconds, error)

    try:
        options = dataclasses.replace(
            settings.track,
            start=job.start,
            end=job.end,
            direction=job.direction,
            retrack_range=False,
        )
        outcome = track_video(
            job.video,
            job.prompts,
            job.session_folder(out),
            _within_worker_memory(settings.model),
            options,
            load_model=functools.partial(shared_model, threads=settings.torch_threads),
            on_frame=report.frame,
            on_save=report.saved,
            warn=lambda warning: log.warning("%s: %s", job.name, warning),
            program="napari-sam2-track batch",
            lock_wait_s=LOCK_WAIT_S,
        )
        if outcome.status == "interrupted":
            done = result("failed", outcome.frames, "interrupted; run the batch again.")
        else:
            _export(job, Path(out), settings.exports, fresh=outcome.status == "done")
            done = result(outcome.status, outcome.frames)
    except UserError as exc:
        done = result("failed", error=sentence(exc))
    except Exception as exc:
        log.exception("tracking %s failed", job.name)
        done = result("failed", error=machine_problem(exc) or _bug(exc))
    report.finished(done)
    return done


def _within_worker_memory(model: ModelOptions) -> ModelOptions:
    """The default feature cache held to a share of this worker's memory limit, so
    workers sharing a machine do not together take more than one would alone."""
    if model.feature_cache_bytes is not None:
        return model
    limit = _worker_memory_limit()
    if not limit:
        return model
    from .sam2_backend.feature_cache import DEFAULT_SHARE, default_budget

    budget = min(default_budget(), int(limit * DEFAULT_SHARE))
    return dataclasses.replace(model, feature_cache_bytes=budget)


def _worker_memory_limit() -> int | None:
    worker = current_worker()
    return getattr(getattr(worker, "memory_manager", None), "memory_limit", None)


def _bug(exc: Exception) -> str:
    return (
        f"This is a bug in napari-sam2-track {__version__} ({type(exc).__name__}: "
        f"{' '.join(str(exc).split())}); please report it, with the worker's log, at "
        f"{BUG_TRACKER}."
    )


def _export(job: BatchJob, out: Path, formats: tuple[str, ...], fresh: bool) -> None:
    """Write the session's exports: again after tracking, else only those missing."""
    from .exports import EXPORTERS, export
    from .store import load_session

    targets = {f: exports_path(out, f, job.name) for f in formats}
    targets = {f: t for f, t in targets.items() if fresh or not t.exists()}
    if not targets:
        return
    annotation = load_session(job.session_folder(out))
    for format, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        export(annotation, EXPORTERS[format].name, target)


def exports_path(out: str | Path, format: str, name: str) -> Path:
    """Where a batch writes one video's export in one format:
    ``out/exports/<format>/<name>``, with the format's file extension."""
    from .exports import EXPORTERS

    return Path(out) / EXPORTS_FOLDER / format / EXPORTERS[format].output_name(name)


# -------------------------------------------------------------------------- the model

_model_lock = threading.Lock()
_model: tuple[tuple, Any] | None = None  # one model per worker process, the last used


def shared_model(
    name: str,
    checkpoint: Path | None,
    device: str,
    image_size: int | None,
    threads: int | None = None,
):
    """The model this worker process loaded for these settings, loaded once.

    Another model replaces it, so a worker holds one at a time. The arguments are
    :func:`~.sam2_backend.build_model`'s, and ``threads`` torch's threads (None: the
    cores this worker may use, shared over its task slots).
    """
    global _model
    from .sam2_backend import build_model

    _set_torch_threads(threads)
    device = worker_device(device)
    key = (name, str(checkpoint) if checkpoint else None, device, image_size)
    with _model_lock:
        if _model is None or _model[0] != key:
            _model = None  # free the old one before loading the new one
            _model = (key, build_model(name, checkpoint, device, image_size))
        return _model[1]


def worker_device(device: str) -> str:
    """``auto`` or ``cuda`` on a numbered worker (a local cluster's) of a machine with
    several GPUs: the GPU of its number, so each has one; else ``device`` as given."""
    if device not in ("auto", "cuda"):
        return device
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return spread_device(device, count, _worker_number())


def spread_device(device: str, gpus: int, worker_number: int | None) -> str:
    """The GPU worker ``worker_number`` takes out of ``gpus``, or ``device`` as given."""
    if gpus > 1 and worker_number is not None:
        return f"cuda:{worker_number % gpus}"
    return device


def current_worker() -> Any:
    """The Dask worker running this task, or None outside one."""
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _worker_number() -> int | None:
    name = getattr(current_worker(), "name", None)
    return name if isinstance(name, int) else None


def _set_torch_threads(threads: int | None) -> None:
    import torch

    if threads is None:
        threads = max(1, usable_cores() // max(1, _task_slots()))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def usable_cores() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _task_slots() -> int:
    return getattr(getattr(current_worker(), "state", None), "nthreads", 1)


# ----------------------------------------------------------------------- progress


class _Reporter:
    """Sends a task's progress to the client through Dask's event log, throttled."""

    def __init__(self, topic: str | None, name: str):
        self.topic, self.name = topic, name
        self._sent_at = 0.0

    def frame(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self._sent_at >= _REPORT_EVERY_S:
            self._sent_at = now
            self._send(BatchEvent(self.name, done, total))

    def saved(self, done: int) -> None:
        self._send(BatchEvent(self.name, done, saved=True))

    def finished(self, result: BatchResult) -> None:
        self._send(BatchEvent(self.name, result.frames, result=result))

    def _send(self, event: BatchEvent) -> None:
        worker = current_worker()
        if self.topic is None or worker is None:  # no one to tell, or not on a worker
            return
        event = dataclasses.replace(event, worker_pid=os.getpid())
        try:
            worker.log_event(self.topic, dataclasses.asdict(event))
        except Exception:  # progress is not worth failing a video for
            log.warning("progress of %s could not be sent", self.name, exc_info=True)
