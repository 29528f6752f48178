"""Many videos on a Dask cluster: one task per video, each writing its own session.

A local cluster by default (one worker per GPU, else one for the machine), an existing
one by its scheduler's address, or a ``dask.distributed.Client`` a notebook already has.
``dask.distributed`` is imported only when a batch runs.

Each task locks and saves its session folder as ``track`` does, and saves while it
tracks, so a worker that dies costs at most the frames since its last save: Dask runs
the task again on another worker and that run goes on from the save. Every video ends as
a row of ``OUT/summary.csv``, which is rewritten whole as each video finishes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .batch_jobs import (
    BatchJob,
    BatchResult,
    JobsError,
    check_unique_names,
    read_jobs_csv,
    write_summary,
)
from .batch_worker import BatchEvent, BatchSettings, run_job, usable_cores
from .errors import UserError
from .tracking_run import ModelOptions, TrackOptions

__all__ = ["BatchEvent", "ClusterPlan", "local_cluster_plan", "run_batch"]

EventHandler = Callable[[BatchEvent], None]


@dataclass(frozen=True)
class ClusterPlan:
    """A local cluster's size: worker processes, and torch threads in each."""

    workers: int
    torch_threads: int


def local_cluster_plan(cores: int, gpus: int, workers: int | None = None) -> ClusterPlan:
    """One worker per GPU, or one for the whole machine without a GPU (two processes
    on one CPU only split its cores); ``workers`` overrides. The cores are shared out."""
    if workers is not None and workers < 1:
        raise UserError(f"a batch needs at least one worker, not {workers}.")
    count = workers or max(1, gpus)
    return ClusterPlan(count, max(1, cores // count))


def run_batch(
    jobs: str | Path | Sequence[BatchJob],
    out: str | Path,
    model: ModelOptions | None = None,
    options: TrackOptions | None = None,
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    exports: Sequence[str] = (),
    on_event: EventHandler | None = None,
    on_dashboard: Callable[[str], None] | None = None,
) -> list[BatchResult]:
    """Track every job's video on a Dask cluster; one result per job, in their order.

    Parameters
    ----------
    jobs : path or sequence of BatchJob
        A jobs CSV (see :mod:`.batch_jobs`) or the jobs themselves.
    out : str or Path
        The folder for the session folders, ``exports/`` and ``summary.csv``; held by one
        batch at a time.
    model, options : ModelOptions, TrackOptions
        For every video (each job's range and direction replace those of ``options``).
    client : dask.distributed.Client, optional
        A client to run on; else one for ``scheduler``; else a new local cluster of
        ``workers`` processes (see :func:`local_cluster_plan`), closed afterwards.
    exports : sequence of str
        Formats (names in ``exports.EXPORTERS``) written per video into
        ``out/exports/<format>/``.
    on_event : callable, optional
        Gets each :class:`BatchEvent` the tasks send (called on the client's event loop).
    on_dashboard : callable, optional
        Gets the address of Dask's dashboard, when the cluster serves one.

    Returns
    -------
    list of BatchResult
        What ``summary.csv`` holds: done, failed (with its sentence) or skipped.
    """
    from .session_lock import session_lock

    jobs = read_jobs_csv(jobs) if isinstance(jobs, str | Path) else list(jobs)
    if not jobs:
        raise JobsError("the batch lists no videos.")
    check_unique_names(jobs)
    _check_exports(exports)
    model = _absolute_checkpoint(model or ModelOptions())
    _check_model(model)
    out = Path(out).absolute()  # workers may start elsewhere
    jobs = [_absolute(job) for job in jobs]
    _check_out(out)
    with (
        session_lock(out, "napari-sam2-track batch", wait=0),
        _connected(client, scheduler, workers, model, jobs) as (dask_client, threads),
    ):
        link = _dashboard_link(dask_client)
        if link and on_dashboard:
            on_dashboard(link)
        settings = BatchSettings(
            model,
            options or TrackOptions(),
            tuple(exports),
            threads,
            topic=f"napari-sam2-track-batch-{uuid.uuid4().hex}",
        )
        return _run(dask_client, jobs, out, settings, on_event)


def _absolute(job: BatchJob) -> BatchJob:
    return dataclasses.replace(job, video=job.video.absolute(), prompts=job.prompts.absolute())


def _absolute_checkpoint(model: ModelOptions) -> ModelOptions:
    if model.checkpoint is None:
        return model
    return dataclasses.replace(model, checkpoint=Path(model.checkpoint).absolute())


def _dashboard_link(client: Any) -> str | None:
    try:
        return client.dashboard_link or None
    except (KeyError, AttributeError):  # a scheduler without the dashboard (no bokeh)
        return None


def _check_exports(formats: Sequence[str]) -> None:
    from .exports import get_exporter

    for format in formats:
        get_exporter(format)


def _check_model(model: ModelOptions) -> None:
    """What can be checked on the client before any worker starts."""
    from .models import get_model
    from .sam2_backend import check_image_size

    check_image_size(model.image_size)
    if model.model is not None:
        get_model(model.model)
    if model.checkpoint is not None and not Path(model.checkpoint).is_file():
        raise UserError(f"the checkpoint {model.checkpoint} does not exist; check the path.")


def _check_out(out: Path) -> None:
    from .paths import why_unwritable
    from .store import is_session_folder

    problem = why_unwritable(out)
    if problem:
        raise UserError(f"{problem}.")
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; a batch writes into a folder: choose another path.")
    if is_session_folder(out):
        raise UserError(
            f"{out} is a session folder; a batch writes a session folder per video into "
            "a folder of its own: choose another path."
        )


@contextlib.contextmanager
def _connected(
    client: Any,
    scheduler: str | None,
    workers: int | None,
    model: ModelOptions,
    jobs: list[BatchJob],
) -> Iterator[tuple[Any, int | None]]:
    """A client and the torch threads per worker (None: each worker decides)."""
    if client is not None:
        yield client, None
        return
    from distributed import Client

    if scheduler is not None:
        try:
            connected = Client(scheduler, timeout="30s")
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(
                f"no Dask scheduler answered at {scheduler} ({exc}); check the address, "
                "or leave --scheduler out to run on this machine."
            ) from None
        with connected:
            yield connected, None
        return
    from distributed import LocalCluster

    _download_once(model, jobs)  # here, before the workers would each fetch it
    plan = local_cluster_plan(usable_cores(), _gpu_count(model.device), workers)
    with (
        LocalCluster(
            n_workers=plan.workers,
            threads_per_worker=1,  # one video at a time per worker: one model, one device
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as local,
    ):
        yield local, plan.torch_threads


def _download_once(model: ModelOptions, jobs: list[BatchJob]) -> None:
    """Fetch the checkpoint the workers will load (a job continuing a session may use
    its session's model instead of the default)."""
    from .models import DEFAULT_MODEL, ensure_checkpoint, get_model

    uses_default = any(not job.prompts.is_dir() for job in jobs)
    if model.checkpoint is None and (model.model is not None or uses_default):
        ensure_checkpoint(get_model(model.model or DEFAULT_MODEL), progress=True)


def _gpu_count(device: str) -> int:
    if device not in ("auto", "cuda"):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _run(
    client: Any, jobs: list[BatchJob], out: Path, settings: BatchSettings, on_event
) -> list[BatchResult]:
    from distributed import as_completed

    results: dict[str, BatchResult] = {}
    handler = _event_handler(on_event)
    client.subscribe_topic(settings.topic, handler)
    futures = {
        client.submit(
            run_job, job, out, settings, key=f"track-{job.name}-{uuid.uuid4().hex[:8]}", pure=False
        ): job
        for job in jobs
    }
    try:
        for future in as_completed(futures):
            job = futures[future]
            results[job.name] = _result(future, job)
            write_summary(out, [results[j.name] for j in jobs if j.name in results])
    except KeyboardInterrupt:
        client.cancel(list(futures))
        for job in jobs:
            results.setdefault(job.name, _interrupted(job))
        write_summary(out, [results[j.name] for j in jobs])
        raise
    finally:
        client.unsubscribe_topic(settings.topic)
    ordered = [results[j.name] for j in jobs]
    write_summary(out, ordered)
    return ordered


def _result(future: Any, job: BatchJob) -> BatchResult:
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker:
        return BatchResult(
            job.name,
            str(job.video),
            "failed",
            error="every worker that tracked it died (out of memory, or killed); the last "
            "save is kept: give the workers more memory, then run the batch again.",
        )
    except Exception as exc:  # the task could not even start: unpickling, a lost cluster
        return BatchResult(
            job.name, str(job.video), "failed", error=f"the task failed on the cluster ({exc})."
        )


def _interrupted(job: BatchJob) -> BatchResult:
    return BatchResult(
        job.name,
        str(job.video),
        "failed",
        error="the batch was interrupted before this video finished; run it again to go on.",
    )


def _event_handler(on_event: EventHandler | None) -> Callable[[Any], None]:
    lock = threading.Lock()
    names = {f.name for f in dataclasses.fields(BatchEvent)} - {"result"}

    def handle(event: Any) -> None:
        if on_event is None:
            return
        _, message = event  # Dask adds the worker's address, and may add more
        result = message.get("result")
        fields = {k: v for k, v in message.items() if k in names}
        with lock:
            on_event(BatchEvent(**fields, result=BatchResult(**result) if result else None))

    return handle
