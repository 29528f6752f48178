"""The one error type whose message is a sentence for the user, not a bug report, and
the sentences for failures the machine causes."""

from __future__ import annotations

import sys

_OOM_PHRASES = ("out of memory", "can't allocate memory")
BUG_TRACKER = "https://github.com/napari-sam2-track/napari-sam2-track/issues"


class UserError(ValueError):
    """Input or a setting that cannot be used; ``str(error)`` is one sentence to show.

    Every error the user can cause derives from this, so the command line and the
    viewer show these as sentences and let anything else surface as a bug.
    """


def sentence(exc: BaseException) -> str:
    """An error's message as one sentence on one line, capitalised."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:1].upper() + text[1:]


def machine_problem(exc: BaseException) -> str | None:
    """A sentence for running out of memory or a file the system refused, else None."""
    if out_of_memory(exc):
        return (
            "Tracking ran out of memory; try a smaller --image-size, a smaller model "
            "or another --device."
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename} could not be used ({os_reason(exc)})."
    return None


def os_reason(exc: OSError) -> str:
    """What the system said, for the parentheses of a sentence: "no space left on
    device"."""
    return (exc.strerror or str(exc)).lower()


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is the machine (or torch's allocator) running out of memory."""
    # torch is looked up, not imported: if it was never imported, it raised nothing.
    torch = sys.modules.get("torch")
    torch_oom = getattr(torch, "OutOfMemoryError", None) if torch else None
    if isinstance(exc, MemoryError) or (torch_oom and isinstance(exc, torch_oom)):
        return True
    text = str(exc).lower()  # CPU and MPS allocators raise a plain RuntimeError
    return isinstance(exc, RuntimeError) and any(s in text for s in _OOM_PHRASES)
