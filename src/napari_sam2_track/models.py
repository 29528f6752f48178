"""SAM 2 model registry, checkpoint cache, download on first use and weight loading.

Every failure surfaces as a :class:`CheckpointError` whose message is one sentence that a
user can act on, so the GUI and the CLI can show it as is.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
import pooch

from .errors import UserError, os_reason

CACHE_ENV = "NAPARI_SAM2_TRACK_CACHE"
DEFAULT_MODEL = "sam2.1_hiera_tiny"
# Shipped with the package; trained only on napari_sam2_track.synthetic's videos.
SYNTHETIC_MODEL = "mini-synthetic"

_SAM21_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
_SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/072824/"
# Checkpoints are hundreds of MB; pooch's 1 KiB default chunk costs a Python loop per KiB.
_CHUNK_BYTES = 1 << 20
# Models whose config and checkpoint ship inside this package (see mini/).
BUNDLED_DIR = Path(__file__).parent / "mini"

log = logging.getLogger(__name__)


class CheckpointError(UserError):
    """A checkpoint could not be found, downloaded, verified or loaded."""


class UnknownModelError(CheckpointError):
    """The model name is not in the registry."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config: str  # Hydra config name inside the sam2 package, or in BUNDLED_DIR if bundled
    url: str
    size_bytes: int | None
    sha256: str | None
    description: str
    bundled: bool = False  # config and checkpoint ship in BUNDLED_DIR: nothing to download
    image_size: int = 1024  # the frame size the model was trained at
    # Trained with SAM 2's three candidate masks, which SAM 2 falls back on when its
    # single mask looks unstable; a model trained for one mask has only that one.
    multimask: bool = True

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# Size word in the file name -> config suffix; the two releases share the naming scheme.
_SIZES = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}
_SAM21_FILES = {  # size word -> (bytes, sha256) as published with SAM 2.1
    "tiny": (156_008_466, "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69"),
    "small": (184_416_285, "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38"),
    "base_plus": (323_606_802, "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5"),
    "large": (898_083_611, "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318"),
}
_NOTES = {"tiny": ", the fastest (fine on a CPU)", "large": ", the most accurate (wants a GPU)"}


def _registry() -> dict[str, ModelSpec]:
    specs = []
    for word, letter in _SIZES.items():
        name, (size, sha256) = f"sam2.1_hiera_{word}", _SAM21_FILES[word]
        config = f"configs/sam2.1/sam2.1_hiera_{letter}.yaml"
        text = f"SAM 2.1 Hiera {word.replace('_plus', '+')}{_NOTES.get(word, '')}."
        specs.append(ModelSpec(name, config, f"{_SAM21_URL}{name}.pt", size, sha256, text))
    for word, letter in _SIZES.items():
        name, config = f"sam2_hiera_{word}", f"configs/sam2/sam2_hiera_{letter}.yaml"
        text = f"SAM 2 (July 2024) Hiera {word.replace('_plus', '+')}."
        specs.append(ModelSpec(name, config, f"{_SAM2_URL}{name}.pt", None, None, text))
    text = (
        "Miniature SAM 2 trained on synthetic shapes: a demonstration and test model, "
        "not for real footage."
    )
    url = (BUNDLED_DIR / "mini_synthetic.pt").as_uri()
    specs.append(
        ModelSpec(
            SYNTHETIC_MODEL,
            "mini_synthetic.yaml",
            url,
            None,
            None,
            text,
            bundled=True,
            image_size=320,
            multimask=False,
        )
    )
    return {spec.name: spec for spec in specs}


MODELS: dict[str, ModelSpec] = _registry()


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(MODELS)
        raise UnknownModelError(f"Unknown model {name!r}; choose one of {known}.") from None


def model_for_synthetic_video(cache: str | Path | None = None) -> str:
    """The model to offer for a synthetic video such as the sample: an official one whose
    checkpoint is already cached (the default first), else the bundled miniature model,
    so that the sample can be tracked offline without a download."""
    official = [name for name, spec in MODELS.items() if not spec.bundled]
    official.sort(key=lambda name: name != DEFAULT_MODEL)
    for name in official:
        if cached_checkpoint(name, cache) is not None:
            return name
    return SYNTHETIC_MODEL


def cache_dir() -> Path:
    """Folder that holds downloaded checkpoints; the env variable wins when it is set."""
    override = os.environ.get(CACHE_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    return platformdirs.user_cache_path("napari-sam2-track") / "checkpoints"


def _as_spec(spec: ModelSpec | str) -> ModelSpec:
    return get_model(spec) if isinstance(spec, str) else spec


def cached_checkpoint(spec: ModelSpec | str, cache: str | Path | None = None) -> Path | None:
    """The checkpoint's file in the cache folder if it is there (not verified)."""
    spec = _as_spec(spec)
    folder = BUNDLED_DIR if spec.bundled else Path(cache or cache_dir())
    path = folder / spec.filename
    return path if path.is_file() else None


def _problem(path: Path, spec: ModelSpec) -> str | None:
    """Why `path` is not the expected file, as a clause, or None when nothing is wrong."""
    size = path.stat().st_size
    if spec.size_bytes is not None and size != spec.size_bytes:
        return f"it has {size:,} bytes instead of {spec.size_bytes:,}"
    if spec.sha256 and pooch.file_hash(str(path), alg="sha256") != spec.sha256.lower():
        return "its SHA-256 checksum does not match"
    return None


def verify_file(path: str | Path, spec: ModelSpec | str) -> None:
    """Check size and checksum, where the registry knows them, of a local checkpoint."""
    path, spec = Path(path), _as_spec(spec)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file {path} does not exist.")
    problem = _problem(path, spec)
    if problem:
        raise CheckpointError(
            f"{path} is not a complete {spec.name} checkpoint ({problem}); "
            f"download it again from {spec.url}."
        )


class _SizeMismatch(CheckpointError):
    """A download that stopped short; reworded into a sentence by ensure_checkpoint."""


class _Downloader:
    """pooch's HTTP downloader plus a size check that runs before pooch moves the
    temporary file to its final name, so a short file never appears there."""

    def __init__(self, progress: Any, size: int | None):
        self._http = pooch.HTTPDownloader(progressbar=progress or False, chunk_size=_CHUNK_BYTES)
        self._size = size

    def __call__(self, url: str, output_file: str, pooch_: Any, check_only: bool = False):
        result = self._http(url, output_file, pooch_, check_only=check_only)
        if not check_only and self._size is not None:
            got = os.path.getsize(output_file)
            if got != self._size:
                raise _SizeMismatch(f"it has {got:,} bytes instead of {self._size:,}")
        return result


def _network_reason(exc: BaseException) -> str:
    """Short, single-line cause of a requests failure, e.g. "connection refused"."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason}".strip()
    # requests wraps urllib3 wraps the socket error; the innermost OS error reads best.
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        err = todo.pop(0)
        if not isinstance(err, BaseException) or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, OSError) and isinstance(err.strerror, str) and err.strerror:
            return err.strerror.lower()
        todo += [err.__cause__, err.__context__, getattr(err, "reason", None), *err.args[:1]]
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off during the download"
    if isinstance(exc, requests.exceptions.SSLError):
        return "secure connection failed"
    return "the server could not be reached"


def _sentence(*clauses: str) -> str:
    text = "; ".join(c.strip().rstrip(".") for c in clauses if c)
    return " ".join((text[:1].upper() + text[1:]).split()) + "."


def _discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("Could not remove %s: %s", path, exc)


def ensure_checkpoint(
    spec: ModelSpec | str, progress: Any = None, cache: str | Path | None = None
) -> Path:
    """Path of the model's checkpoint in the cache, downloaded and verified on first use.

    `progress` is True for a progress bar on stderr, None/False for none, or a tqdm-like
    object (with `total`, `update`, `reset`, `close`) that a GUI can draw.
    """
    import requests

    spec = _as_spec(spec)
    if spec.bundled:
        path = cached_checkpoint(spec)
        if path is None:
            raise CheckpointError(
                f"The checkpoint of {spec.name} that ships with napari-sam2-track is missing "
                f"({BUNDLED_DIR / spec.filename}); reinstall napari-sam2-track."
            )
        return path
    folder = Path(cache or cache_dir()).expanduser()
    target = folder / spec.filename
    damaged = ""
    if target.is_file():
        problem = _problem(target, spec)
        if problem is None:
            return target
        # Typically a download cut short by another tool; it is useless, and leaving it
        # under the final name would make the next start trip over it again.
        damaged = f"the cached file {target} was damaged ({problem}) and has been removed"
        _discard(target)

    download, retry = f"{spec.name} from {spec.url}", "try again"
    by_hand = f"download it by hand and save it as {target}, or pass a local checkpoint file"
    known_hash = f"sha256:{spec.sha256}" if spec.sha256 else None
    downloader = _Downloader(progress, spec.size_bytes)
    log.info("Downloading %s from %s to %s", spec.name, spec.url, target)
    pooch_log = pooch.get_logger()
    old_level = pooch_log.level
    # pooch's own log lines address developers (e.g. how to pin a hash); keep them quiet.
    pooch_log.setLevel(logging.WARNING)
    try:
        pooch.retrieve(
            spec.url, known_hash=known_hash, fname=target.name, path=folder, downloader=downloader
        )
    except requests.RequestException as exc:
        reason = _network_reason(exc)
        failure = [f"could not download {download} ({reason})", by_hand]
    except _SizeMismatch as exc:
        failure = [
            f"the download of {download} was incomplete ({exc}), so it was discarded",
            retry,
        ]
    except ValueError:
        # pooch raises ValueError for a hash mismatch, after deleting the temporary file.
        failure = [f"the download of {download} failed its checksum, so it was discarded", retry]
    except OSError as exc:
        failure = [
            f"could not save {spec.name} to {target} ({os_reason(exc)})",
            f"check that the folder is writable and has room, or {by_hand}",
        ]
    else:
        return target
    finally:
        pooch_log.setLevel(old_level)
    raise CheckpointError(_sentence(damaged, *failure))


def load_checkpoint_weights(model: Any, path: str | Path, model_name: str) -> None:
    """Load a SAM 2 checkpoint (``{"model": state_dict}`` or a bare state dict) into
    `model`, which is left untouched when the checkpoint does not fit it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file {path} does not exist.")
    import torch

    damaged = f"{path} is incomplete or damaged and cannot be read; download it again."
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise CheckpointError(
                f"{path} holds more than plain weights and is not loaded for safety; "
                "use a SAM 2 checkpoint file."
            ) from None
        raise CheckpointError(damaged) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError):
        raise CheckpointError(damaged) from None
    except OSError as exc:
        raise CheckpointError(f"Could not read {path} ({exc.strerror or exc}).") from None

    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not contain SAM 2 model weights.")

    # Compared before loading so that a checkpoint that does not fit leaves the model as it
    # was; load_state_dict would copy the matching part first, and its message is a dump.
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    if not (missing or unexpected or reshaped):
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError:  # a mismatch that the comparison above cannot see
            raise CheckpointError(
                f"{path} does not fit model {model_name}; choose the config it was trained with."
            ) from None
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected or reshaped:
        raise CheckpointError(_misfit(path, model_name, missing, unexpected, reshaped))


def _misfit(
    path: Path, model_name: str, missing: list[str], unexpected: list[str], reshaped: list[str]
) -> str:
    parts = [f"{len(missing)} weights missing", f"{len(unexpected)} unexpected"]
    if reshaped:
        parts.append(f"{len(reshaped)} with a different shape")
    example = [*missing, *unexpected, *reshaped][0]
    return (
        f"{path} does not fit model {model_name}: {', '.join(parts)} (e.g. {example}); "
        "choose the config it was trained with."
    )


def list_models(cache: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per registry entry for a table: name, size_bytes, cached, path."""
    rows = []
    for spec in MODELS.values():
        path = cached_checkpoint(spec, cache)
        size = spec.size_bytes
        if spec.bundled and path is not None:  # not pinned: it changes when retrained
            size = path.stat().st_size
        row = {"name": spec.name, "size_bytes": size, "cached": path is not None}
        rows.append({**row, "path": path, "description": spec.description})
    return rows
