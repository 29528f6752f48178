"""What the viewer says when something fails: a sentence, or a request to report it."""

from __future__ import annotations

from napari_sam2_track.engine import SessionBusyError
from napari_sam2_track.notices import failure_message
from napari_sam2_track.prompts import PromptError


def test_user_errors_read_as_one_sentence():
    message = failure_message("Propagation", PromptError("there is nothing to propagate."))
    assert message == "There is nothing to propagate."
    assert failure_message("Export", SessionBusyError("busy now.")) == "Busy now."


def test_anything_else_is_a_failure_to_report():
    message = failure_message("Propagation", ValueError("index 7 is out of bounds\n  at 3"))
    assert message.startswith("Propagation failed: ValueError: index 7 is out of bounds at 3")
    assert message.endswith("please report this.")
    assert "\n" not in message
