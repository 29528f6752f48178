"""How failures reach the user in the viewer: a sentence for what they can fix, a
request to report anything else."""

from __future__ import annotations

from napari.utils.notifications import show_warning

from .errors import UserError


def sentence(text: str) -> str:
    """``text`` on one line, with its first letter capitalised."""
    text = " ".join(text.split())
    return text[:1].upper() + text[1:]


def failure_message(action: str, exc: BaseException) -> str:
    """The one line to show for ``exc``, raised while doing ``action`` (e.g. "Export")."""
    if isinstance(exc, UserError):
        return sentence(str(exc))
    return sentence(f"{action} failed: {type(exc).__name__}: {exc}; please report this.")


def show_failure(action: str, exc: BaseException) -> None:
    """Show :func:`failure_message` as a warning notification."""
    show_warning(failure_message(action, exc))
