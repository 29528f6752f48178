"""A batch's jobs (one CSV row per video) and its summary, read and written; no Dask.

JOBS.csv has the columns ``video`` and ``prompts`` (a prompts CSV or a session folder),
and optionally ``name``, ``start``, ``end`` and ``direction``; paths are relative to the
CSV's folder. Each video's session is ``OUT/<name>.session``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .csv_rows import read_rows
from .errors import UserError, os_reason
from .propagation import DIRECTIONS, Direction

REQUIRED_COLUMNS = ("video", "prompts")
OPTIONAL_COLUMNS = ("name", "start", "end", "direction")
SUMMARY_COLUMNS = ("name", "video", "status", "frames", "seconds", "error")
SUMMARY_FILE = "summary.csv"
SESSION_SUFFIX = ".session"
EXPORTS_FOLDER = "exports"
BatchStatus = Literal["done", "failed", "skipped"]
_UNSAFE_NAME = re.compile(r"[\x00-\x1f/\\:*?\"<>|]")


class JobsError(UserError):
    """A jobs CSV that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class BatchJob:
    """One video of a batch: where it is, its prompts, and what to track."""

    name: str
    video: Path
    prompts: Path
    start: int | None = None
    end: int | None = None
    direction: Direction = "forward"

    def session_folder(self, out: str | Path) -> Path:
        return Path(out) / f"{self.name}{SESSION_SUFFIX}"


@dataclass(frozen=True)
class BatchResult:
    """One row of ``summary.csv``: ``frames`` and ``seconds`` are this run's (0 for a
    video skipped because it was done), ``error`` the one sentence of a failure."""

    name: str
    video: str
    status: BatchStatus
    frames: int = 0
    seconds: float = 0.0
    error: str = ""

    def row(self) -> dict[str, str]:
        return {
            "name": self.name,
            "video": self.video,
            "status": self.status,
            "frames": str(self.frames),
            "seconds": f"{self.seconds:.1f}",
            "error": self.error,
        }


def read_jobs_csv(path: str | Path) -> list[BatchJob]:
    """Every job of a jobs CSV, all checked before any is run.

    Raises
    ------
    JobsError
        A file that cannot be read, a missing or unknown column, a bad value, or two
        rows with one name; the message names the line.
    """
    path = Path(path)
    try:
        header, rows = read_rows(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
        raise JobsError(f"the jobs file {path} could not be read ({reason}).") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise JobsError(
            f"{path.name} has no {' or '.join(missing)} column; its header must name at "
            f"least {', '.join(REQUIRED_COLUMNS)} (and may name {', '.join(OPTIONAL_COLUMNS)})."
        )
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise JobsError(
            f"{path.name} has a column {unknown[0]!r} that means nothing here; the columns "
            f"are {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}."
        )
    jobs = [_job(values, path, line) for line, values in rows]
    if not jobs:
        raise JobsError(f"{path.name} lists no videos.")
    check_unique_names(jobs)
    return jobs


def _job(values: dict[str, str], csv_path: Path, line: int) -> BatchJob:
    where = f"{csv_path.name} line {line}"
    for column in REQUIRED_COLUMNS:
        if not values.get(column):
            raise JobsError(f"{where} has no {column}.")
    video = _resolve(values["video"], csv_path)
    name = values.get("name") or default_name(video)
    problem = name_problem(name)
    if problem:
        raise JobsError(f"{where}: {problem}.")
    start, end = (_frame(values.get(c, ""), c, where) for c in ("start", "end"))
    if start is not None and end is not None and start > end:
        raise JobsError(f"{where} starts at frame {start}, after its end {end}.")
    direction = values.get("direction") or "forward"
    if direction not in DIRECTIONS:
        raise JobsError(f"{where}: the direction must be one of {', '.join(DIRECTIONS)}.")
    prompts = _resolve(values["prompts"], csv_path)
    return BatchJob(name, video, prompts, start, end, direction)


def _resolve(text: str, csv_path: Path) -> Path:
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else csv_path.parent.absolute() / path


def _frame(text: str, column: str, where: str) -> int | None:
    if not text:
        return None
    if not re.fullmatch(r"\d+", text):
        raise JobsError(f"{where}: {column} must be a frame number (0 or more), not {text!r}.")
    return int(text)


def default_name(video: Path) -> str:
    """A job's name when the CSV gives none: the video file's stem, or the folder's name."""
    return video.name if video.is_dir() or not video.suffix else video.stem


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a session folder, or None."""
    if name in (".", "..") or name.startswith("."):
        return f"the name {name!r} cannot start with a dot"
    if _UNSAFE_NAME.search(name):
        return f"the name {name!r} holds a character a file name cannot have"
    return None


def check_unique_names(jobs: list[BatchJob]) -> None:
    """Refuse two jobs that would write one session folder (names differing only in
    case do too, on case-insensitive file systems)."""
    seen: dict[str, BatchJob] = {}
    for job in jobs:
        key = job.name.casefold()
        if key in seen:
            raise JobsError(
                f"two rows are named {job.name!r} ({seen[key].video.name} and "
                f"{job.video.name}); give each a name column value of its own."
            )
        seen[key] = job


def summary_path(out: str | Path) -> Path:
    return Path(out) / SUMMARY_FILE


def write_summary(out: str | Path, results: list[BatchResult]) -> Path:
    """Write ``summary.csv`` whole: a reader sees the previous one or this one."""
    path = summary_path(out)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.row() for result in results)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return path


def read_summary(out: str | Path) -> list[BatchResult]:
    """The rows of a batch's ``summary.csv``."""
    with open(summary_path(out), newline="", encoding="utf-8") as handle:
        return [
            BatchResult(
                row["name"],
                row["video"],
                row["status"],
                int(row["frames"]),
                float(row["seconds"]),
                row["error"],
            )
            for row in csv.DictReader(handle)
        ]
