"""The one error type whose message is a sentence for the user, not a bug report."""

from __future__ import annotations


class UserError(ValueError):
    """Input or a setting that cannot be used; ``str(error)`` is one sentence to show.

    Every error the user can cause derives from this, so the command line and the
    viewer show these as sentences and let anything else surface as a bug.
    """
