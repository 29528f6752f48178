"""One video's annotation without a viewer: the named objects, the session folder, and
saving the tracking session with them (no napari or Qt here).

Three collections of objects exist, each meaning something else:

- :attr:`AnnotationModel.registry`: every object the user made, named or prompted,
  prompts and masks or not; the current object is one of them.
- ``TrackingSession.object_ids``: the objects SAM 2 knows, those with prompts or masks.
- ``store.Annotation.objects``: the names and classes saved in a session folder.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from .autosave import autosave_folder
from .engine import TrackingSession
from .errors import UserError
from .store import Annotation, ObjectInfo, save_session
from .video_ref import VideoRef


def model_settings(model) -> dict:
    """How a loaded SAM 2 model is saved in a session's manifest."""
    return {
        "name": model.name,
        "image_size": model.image_size,
        "checkpoint": str(model.checkpoint) if model.checkpoint else None,
    }


def _key(folder: Path) -> str:
    return os.path.realpath(folder)


def _default_object(obj_id: int) -> ObjectInfo:
    return ObjectInfo(obj_id, f"object {obj_id}")


class AnnotationModel:
    """The object registry and the session folder of one video's tracking session.

    Parameters
    ----------
    session
        The tracking session whose prompts and results are saved.
    video
        The video the session tracks, as saved in the manifest.
    registry
        The objects known so far (a saved session's), by id.
    folder
        The session folder chosen or opened; None until there is one.
    stored
        The saved annotation this one continues, if any: saving into the folder it came
        from replaces that version and no other.
    """

    def __init__(
        self,
        session: TrackingSession,
        video: VideoRef,
        registry: dict[int, ObjectInfo] | None = None,
        folder: Path | None = None,
        stored: Annotation | None = None,
    ):
        self.session, self.video, self.folder = session, video, folder
        #: Every object the user made or prompted, by id (see the module's docstring).
        self.registry: dict[int, ObjectInfo] = dict(registry or {})
        self.current_object = min(self.registry, default=1)
        #: The version this model last saw in each folder it loaded from or saved to.
        self._versions: dict[str, str | None] = {}
        if stored is not None and stored.folder is not None:
            self._versions[_key(stored.folder)] = stored.version
        self._writing = threading.Lock()  # one write at a time, from any thread
        self._saves_asked = 0
        #: By folder, the newest save written there (its number in the order asked).
        self._written: dict[str, int] = {}
        self._folder_from = 0  # the save that chose the session folder

    # ----------------------------------------------------------------- objects

    def new_object(self, name: str = "", category: str = "") -> int:
        """Register a new object (the next free id) and make it the current one."""
        obj_id = max(self.registry, default=0) + 1
        self.registry[obj_id] = ObjectInfo(obj_id, name or f"object {obj_id}", category)
        self.current_object = obj_id
        return obj_id

    def register(self, obj_id: int) -> bool:
        """Make sure an object is registered (a default name if new); True if it was new."""
        if obj_id in self.registry:
            return False
        self.registry[obj_id] = _default_object(obj_id)
        return True

    def select(self, obj_id: int) -> None:
        """Make an object (registered now if new) the current one."""
        self.register(obj_id)
        self.current_object = obj_id

    def rename(self, obj_id: int, name: str, category: str = "") -> None:
        """Give an object a new name and class."""
        self.register(obj_id)
        info = self.registry[obj_id]
        info.name, info.category = name, category

    def cycle(self, step: int) -> int:
        """Make the next (step 1) or previous (step -1) object the current one."""
        ids = sorted(self.registry)
        position = ids.index(self.current_object) if self.current_object in ids else 0
        self.select(ids[(position + step) % len(ids)])
        return self.current_object

    def delete(self, obj_id: int) -> int:
        """Remove an object from the session and the registry; returns the object that
        is current now (object 1 anew when none is left)."""
        self.session.remove_object(obj_id)
        self.registry.pop(obj_id, None)
        if not self.registry:
            self.register(1)
        self.current_object = obj_id if obj_id in self.registry else min(self.registry)
        return self.current_object

    # ------------------------------------------------------------------ saving

    def annotation(self, clear_pending: bool = False) -> Annotation:
        """What a session folder holds now: prompts (a copy), results, objects, model,
        pending (none with ``clear_pending``: a run that finished tracked them all)."""
        session = self.session
        annotation = Annotation(
            self.video,
            session.prompts.copy(),
            session.results,
            dict(self.registry),
            model_settings(session.model),
        )
        annotation.pending_frames = [] if clear_pending else session.pending_frames
        return annotation

    def save(self, folder: str | Path | None = None, clear_pending: bool = False) -> Path:
        """Save into ``folder`` (which becomes the session folder) or the session folder."""
        return self.save_job(folder, clear_pending)()

    def save_job(
        self, folder: str | Path | None = None, clear_pending: bool = False
    ) -> Callable[[], Path]:
        """:meth:`save` in two steps: what to save is taken now, on this thread, and the
        call returned writes it (in a worker, say) and returns the folder. A save asked
        for later and already written there holds all this holds: it is not replaced."""
        folder = Path(folder) if folder else self.folder
        if folder is None:
            raise UserError("Choose a folder to save the session in first.")
        self._saves_asked += 1
        asked, annotation = self._saves_asked, self.annotation(clear_pending)

        def write() -> Path:
            with self._writing:
                if self._written.get(_key(folder), 0) < asked:
                    self._write(folder, annotation, asked)
                if asked > self._folder_from:  # the folder chosen last wins
                    self.folder, self._folder_from = folder, asked
            return folder

        return write

    def autosave(self) -> Path:
        """Save into the session folder, or without one into the video's autosave folder;
        returns where. Raises OSError when that cannot be written, and a ``UserError``
        when another writer holds it or saved another version there."""
        return self.autosave_job()()

    def autosave_job(self) -> Callable[[], Path | None]:
        """:meth:`autosave` in two steps: what to save is taken now, on this thread, and
        the call returned writes it (in a worker, say) and returns where; or, when a
        later save has been written meanwhile (which holds all this holds), None."""
        self._saves_asked += 1
        asked, target, annotation = self._saves_asked, self.autosave_target(), self.annotation()

        def write() -> Path | None:
            with self._writing:
                if max(self._written.values(), default=0) > asked:
                    return None
                self._write(target, annotation, asked)
            return target

        return write

    def _write(self, folder: Path, annotation: Annotation, asked: int) -> None:
        """Save, replacing only the version this model last saw there (none: a new one);
        never waiting for another writer, as the viewer's thread may be the one saving.
        Called with the write lock held."""
        expected = self._versions.get(_key(folder))
        save_session(folder, annotation, expected_version=expected, wait=0)
        self._versions[_key(folder)] = annotation.version
        self._written[_key(folder)] = asked

    def autosave_target(self) -> Path:
        """The session folder, or without one the video's autosave folder."""
        return self.folder or autosave_folder(self.video)
