"""Whether an output path can be written, checked before any long work."""

from __future__ import annotations

import os
from pathlib import Path

NAME_MAX = 255  # bytes in one path component, on the common file systems


def why_unwritable(target: str | Path, name_room: int = 0) -> str | None:
    """Why ``target`` (to be made, or replaced) cannot be written, as a clause; None if
    it can. ``name_room`` is what a temporary sibling adds to its name."""
    target = Path(target).absolute()
    for part in (target, *target.parents):
        if len(part.name.encode()) > NAME_MAX - (name_room if part == target else 0):
            return f"the name {part.name[:40]}... is too long for a file or folder"
    existing = target
    while not existing.exists():
        existing = existing.parent
    if existing != target and not existing.is_dir():
        return f"{target} cannot be made: {existing} is a file, not a folder"
    folder = existing if existing != target or existing.is_dir() else existing.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} cannot be written to; choose a folder you may write in"
    return None
