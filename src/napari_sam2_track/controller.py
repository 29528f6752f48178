"""One video's annotation in napari: its three layers, kept in step with the engine.

- "SAM2 prompts" (Points, features ``label`` and ``obj_id``): any change to the points,
  however it was made, becomes a prompt change for the engine.
- "SAM2 masks" (Labels, value = object id) shows the results; paint edits are folded
  back into them.
- "SAM2 boxes" (Shapes) is derived from the results.

The session, not the layers, holds the work: a layer removed by hand loses nothing, and
comes back (with the video, if that went too) at the next propagation or object change.

SAM 2 only ever runs in worker threads; layers are touched only in the handlers that
napari's workers call on the main thread. The objects and saving belong to an
:class:`AnnotationModel`, prompt edits waiting for SAM 2 to a :class:`PromptQueue`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils import progress
from napari.utils.notifications import show_info, show_warning
from psygnal import Signal
from qtpy.QtCore import QTimer

from .annotation_model import AnnotationModel
from .boxes_view import BoxesView
from .engine import TrackingSession
from .errors import UserError
from .label_volume import DrawnLabels, FrameDrawer, LabelVolume, fold_painted_frame
from .layers import (
    BOX_PROMPTS_LAYER,
    BOXES_LAYER,
    MASKS_LAYER,
    PROMPTS_LAYER,
    box_layer_data,
    box_prompts_layer_kwargs,
    boxes_from_layer,
    boxes_layer_kwargs,
    changed_prompts,
    hiding_colormap,
    marker_size,
    masks_layer_kwargs,
    prompt_boxes,
    prompt_points,
    prompts_from_layer,
    prompts_layer_kwargs,
)
from .notices import show_failure
from .paced_progress import PacedProgress
from .prefetch import Prefetcher
from .prompt_queue import (
    FrameTracked,
    PromptQueue,
    PropagationEnded,
    PropagationMessage,
    PropagationPlanned,
    propagation_messages,
)
from .prompts import NEGATIVE, POSITIVE, FramePrompt, PromptError, with_boxes
from .store import Annotation, ObjectInfo
from .track_states import TrackStates
from .video_ref import VideoRef

_CLICK_TOLERANCE = 3  # screen pixels a click may move and still count as a click


class TrackerController:
    """Ties a video layer, its annotation layers and a :class:`TrackingSession`."""

    #: Emitted when objects are added, removed or selected, whoever did it.
    objects_changed = Signal()
    #: Emitted with each message of a propagation once the viewer shows it.
    propagation_progressed = Signal(object)
    #: Emitted when a propagation has ended (finished, stopped or failed) and is shown.
    propagation_finished = Signal()
    #: Emitted when :attr:`track_states` changed, with the frames (None: all or objects).
    states_changed = Signal(object)
    #: Emitted with where an autosave in the background wrote, or None if it failed.
    autosaved = Signal(object)

    def __init__(
        self,
        viewer: Any,
        video_layer: Any,
        session: TrackingSession,
        registry: dict[int, ObjectInfo] | None = None,
        folder: Path | None = None,
        stored: Annotation | None = None,
    ):
        self.viewer, self.video_layer, self.session = viewer, video_layer, session
        video = VideoRef.from_source(video_layer.data, video_layer.metadata.get("source_path"))
        #: The object registry, the session folder and saving.
        self.annotation_model = AnnotationModel(session, video, registry, folder, stored)
        self.annotation_model.select(self.annotation_model.current_object)
        self.current_label = POSITIVE
        self.follow = True
        self.volume = LabelVolume(session.results)
        #: Prompt edits not yet run through SAM 2.
        self.queue = PromptQueue()
        self._preview_worker = None
        self.propagation_worker = None
        #: What the last propagation tracked, in a sentence (None: none has ended).
        self.last_summary: str | None = None
        self._layer_prompts: dict[tuple[int, int], FramePrompt] = {}
        #: Objects hidden in the layers (their work stays and is saved).
        self.hidden: set[int] = set()
        #: Each object's state on each frame, for the timeline and the object table.
        self.track_states = TrackStates(session.n_frames)
        self._states_worker = None
        self._frames_since_build: set[int] = set()  # changed while a build runs
        self._make_layers()
        self.build_states()
        #: Encodes the frames on screen while idle, so a click there waits for no encode.
        self.prefetcher = Prefetcher(session.tracker, session.n_frames, self._idle)
        viewer.dims.events.current_step.connect(self._on_step)
        self.prefetcher.frame_shown(self.current_frame())

    # ------------------------------------------------------------------ layers

    def _make_layers(self) -> None:
        # Layers a session folder was opened with are replaced by live ones.
        for name in (PROMPTS_LAYER, BOX_PROMPTS_LAYER, MASKS_LAYER, BOXES_LAYER):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        size = marker_size(self.session.height, self.session.width)
        self.masks_layer = self.viewer.add_labels(self.volume, **masks_layer_kwargs())
        self._colormap = self.masks_layer.colormap  # the object colours, hidden or not
        self.boxes_layer = self.viewer.add_shapes(**boxes_layer_kwargs(size))
        self.boxes = BoxesView(self.boxes_layer, self._boxes_of, self.viewer.dims, self.hidden)
        self.box_prompts_layer = self.viewer.add_shapes(**box_prompts_layer_kwargs(size))
        self.prompts_layer = self.viewer.add_points(np.zeros((0, 3)), **prompts_layer_kwargs(size))
        self._set_feature_defaults()
        self.prompts_layer.events.data.connect(self._on_points_data)
        self.prompts_layer.events.features.connect(self._sync_prompts)
        self.box_prompts_layer.events.data.connect(self._on_points_data)
        self.box_prompts_layer.events.features.connect(self._sync_prompts)
        self.prompts_layer.mouse_drag_callbacks.append(self._on_click)
        self.masks_layer.events.paint.connect(self._on_masks_written)
        # Undo and redo write the data back and refresh the layer without a paint event.
        self.masks_layer.events.set_data.connect(self._on_masks_written)
        keys = {
            "n": self.new_object,
            "t": self.toggle_label,
            ".": lambda: self.cycle_object(1),
            ",": lambda: self.cycle_object(-1),
        }
        for key, action in keys.items():
            self.prompts_layer.bind_key(key, lambda _layer, a=action: a(), overwrite=True)
        self._keys = list(keys)
        self.load_prompt_points()
        self.rebuild_boxes()

    def _own_layers(self) -> list:
        return [
            self.video_layer,
            self.masks_layer,
            self.boxes_layer,
            self.box_prompts_layer,
            self.prompts_layer,
        ]

    def restore_layers(self) -> None:
        """Put back any of this annotation's layers that were removed from the viewer,
        each below the next of them still there: video, masks, boxes, box prompts,
        prompts."""
        layers = self.viewer.layers
        own = self._own_layers()
        # `in`, not `is`: a plugin's viewer hands out a new proxy per access to a layer.
        missing = [layer for layer in own if layer not in layers]
        for layer in missing:
            above = [layers.index(o) for o in own[own.index(layer) + 1 :] if o in layers]
            layers.insert(min(above, default=len(layers)), layer)
        if missing:
            names = ", ".join(f"'{layer.name}'" for layer in missing)
            show_info(f"Put back {names}: this annotation shows its work there.")

    def load_prompt_points(self) -> None:
        """Show the session's point and box prompts in the prompts layers."""
        rows, features = prompt_points(self.session.prompts)
        rectangles, box_features = prompt_boxes(self.session.prompts)
        events = self.prompts_layer.events
        with events.data.blocker(), events.features.blocker():
            self.prompts_layer.data = rows
            self.prompts_layer.features = features
        events = self.box_prompts_layer.events
        with events.data.blocker(), events.features.blocker():
            self.box_prompts_layer.data = []
            if rectangles:
                self.box_prompts_layer.add_rectangles(rectangles)
            self.box_prompts_layer.features = box_features
        self._layer_prompts = self._prompts_in_layers()
        self._set_feature_defaults()  # setting features resets them
        self._style_points()

    def _prompts_in_layers(self) -> dict[tuple[int, int], FramePrompt]:
        """The point and box prompts the two prompts layers hold."""
        points, boxes = self.prompts_layer, self.box_prompts_layer
        return with_boxes(
            prompts_from_layer(points.data, points.features),
            boxes_from_layer(boxes.data, boxes.features),
        )

    def object_color(self, obj_id: int) -> np.ndarray:
        """The object's RGBA colour, as the masks layer shows it when not hidden."""
        return np.asarray(self._colormap.map(obj_id), dtype=float)

    def _style_points(self) -> None:
        layer = self.prompts_layer
        if len(layer.data) == 0:
            return
        # Features may lag behind the data for a moment (a script setting both).
        obj_ids = layer.features["obj_id"].fillna(self.current_object).astype(int)
        positive = layer.features["label"].fillna(POSITIVE).to_numpy() == POSITIVE
        layer.face_color = np.array([self.object_color(o) for o in obj_ids])
        layer.symbol = np.where(positive, "disc", "x")
        layer.border_color = np.where(positive, "white", "red")
        layer.shown = ~np.isin(obj_ids.to_numpy(), list(self.hidden))

    def _set_feature_defaults(self) -> None:
        self.prompts_layer.feature_defaults = {
            "label": self.current_label,
            "obj_id": self.current_object,
        }
        self.prompts_layer.current_face_color = self.object_color(self.current_object)
        self.box_prompts_layer.feature_defaults = {"obj_id": self.current_object}

    # ----------------------------------------------------------------- objects

    @property
    def current_object(self) -> int:
        return self.annotation_model.current_object

    def new_object(self, name: str = "", category: str = "") -> int:
        obj_id = self.annotation_model.new_object(name, category)
        self.select_object(obj_id)
        return obj_id

    def select_object(self, obj_id: int) -> None:
        self.restore_layers()
        self.annotation_model.select(obj_id)
        self.masks_layer.selected_label = obj_id
        self._set_feature_defaults()
        self._objects_changed()

    def rename_object(self, obj_id: int, name: str, category: str = "") -> None:
        """Give an object a new name and class; its boxes take the name at once."""
        self.annotation_model.rename(obj_id, name, category)
        self.rebuild_boxes()  # the names on screen; other frames take them when shown
        self._objects_changed()

    def _objects_changed(self) -> None:
        registry = self.annotation_model.registry
        self.track_states.keep_objects(registry)
        if self.hidden:  # new objects need a colour, deleted ones stay hidden no more
            self.hidden.intersection_update(registry)
            self._show_hidden()
        self.objects_changed.emit()

    def set_visible(self, obj_id: int, visible: bool) -> None:
        """Show or hide an object's mask, box and points; its work stays as it is."""
        if visible:
            self.hidden.discard(obj_id)
        else:
            self.hidden.add(obj_id)
        self._show_hidden()
        self.objects_changed.emit()

    def _show_hidden(self) -> None:
        """Leave the hidden objects out of the masks, points and boxes shown."""
        self.masks_layer.colormap = hiding_colormap(
            self._colormap, self.hidden, set(self.annotation_model.registry)
        )
        self._style_points()
        self.boxes.mark_stale(None)

    def cycle_object(self, step: int) -> int:
        """Make the next (step 1) or previous (step -1) object the current one."""
        self.select_object(self.annotation_model.cycle(step))
        return self.current_object

    def toggle_label(self) -> int:
        self.current_label = NEGATIVE if self.current_label == POSITIVE else POSITIVE
        self._set_feature_defaults()
        return self.current_label

    def delete_object(self, obj_id: int) -> None:
        """Remove an object: its prompts, masks and boxes on every frame."""
        self.queue.discard_object(obj_id)
        current = self.annotation_model.delete(obj_id)
        for layer in (self.prompts_layer, self.box_prompts_layer):
            doomed = np.flatnonzero(layer.features["obj_id"].to_numpy() == obj_id)
            with layer.events.data.blocker(), layer.events.features.blocker():
                layer.selected_data = set(doomed.tolist())
                layer.remove_selected()
        self._layer_prompts = {k: p for k, p in self._layer_prompts.items() if k[1] != obj_id}
        self._style_points()
        self.select_object(current)
        self.volume.invalidate()
        self.masks_layer.refresh()
        self.rebuild_boxes()

    # ----------------------------------------------------------------- prompts

    def current_frame(self) -> int:
        return int(self.viewer.dims.current_step[0])

    def add_point(self, row: float, col: float, label: int | None = None) -> None:
        """Add a prompt point for the current object on the current frame."""
        label = self.current_label if label is None else label
        self.prompts_layer.feature_defaults = {"label": label, "obj_id": self.current_object}
        self.prompts_layer.add([[self.current_frame(), row, col]])
        self._set_feature_defaults()

    def _on_click(self, layer, event):
        """In pan/zoom mode, a click adds a point: left positive, right or Ctrl negative."""
        if layer.mode != "pan_zoom":
            return
        pressed = np.asarray(event.pos, dtype=float)
        yield
        while event.type == "mouse_move":
            if np.abs(np.asarray(event.pos, dtype=float) - pressed).max() > _CLICK_TOLERANCE:
                return
            yield
        negative = event.button == 2 or "Control" in {str(m) for m in event.modifiers}
        _, row, col = layer.world_to_data(event.position)[-3:]
        self.add_point(row, col, NEGATIVE if negative else None)

    def _on_points_data(self, event) -> None:
        if getattr(event, "action", "changed") in ("added", "removed", "changed"):
            self._sync_prompts()

    def _sync_prompts(self, _event=None) -> None:
        """Send every point change to the engine, however the points were edited."""
        try:
            after = self._prompts_in_layers()
        except PromptError as exc:  # an object id edited to 0, say: keep what SAM 2 has
            show_warning(f"Ignored the change to the prompts: {exc}")
            return
        changes = changed_prompts(self._layer_prompts, after)
        self._layer_prompts = after
        self._style_points()
        for (frame, obj_id), prompt in changes.items():
            if prompt is not None:
                try:
                    prompt.check_fits(
                        frame, self.session.n_frames, self.session.height, self.session.width
                    )
                except PromptError as exc:
                    show_warning(f"Ignored a prompt: {exc}")
                    continue
                if self.annotation_model.register(obj_id):
                    self._objects_changed()
            self.schedule_prompt(frame, obj_id, prompt)

    def schedule_prompt(self, frame: int, obj_id: int, prompt: FramePrompt | None) -> None:
        """Queue a prompt (None: its removal); a newer one for the same frame and
        object replaces a queued one, so rapid edits never pile up stale runs."""
        self.queue.schedule(frame, obj_id, prompt)
        self._start_previews()

    def send_mask_prompt(self, frame: int, obj_id: int) -> None:
        """Give SAM 2 the (painted) mask of an object on a frame as its prompt there."""
        self.fold_paint()
        entry = self.session.results.get(frame, obj_id)
        if entry is None or entry.empty:
            show_warning(f"Object {obj_id} has no mask on frame {frame} to send to SAM 2.")
            return
        self.schedule_prompt(frame, obj_id, FramePrompt(mask=entry.mask))

    @property
    def previewing(self) -> bool:
        return self._preview_worker is not None

    def _idle(self) -> bool:
        return self._preview_worker is None and self.propagation_worker is None and not self.queue

    def _on_step(self, _event=None) -> None:
        self.prefetcher.frame_shown(self.current_frame())

    def _start_previews(self) -> None:
        if self._preview_worker is not None or self.session.propagating or not self.queue:
            return
        self.prefetcher.pause()  # a click waits for the encode in flight, no more
        worker = _preview_worker(self.session, self.queue)
        worker.yielded.connect(lambda frame: self.refresh_frames([frame]))
        worker.finished.connect(self._previews_done)
        worker.errored.connect(lambda exc: show_failure("Preview", exc))
        self._preview_worker = worker
        worker.start()

    def _previews_done(self) -> None:
        self._preview_worker = None
        self._start_previews()  # edits that arrived while the last one ran
        if self._idle():
            self.prefetcher.resume()

    # ------------------------------------------------------------- propagation

    def propagate(
        self,
        direction: str = "forward",
        start: int | None = None,
        end: int | None = None,
        until: str = "rejoin",
    ):
        """Start propagating in a worker; returns the worker (None if one is running).

        Queued prompt edits are applied first, in the same worker, so the run always
        starts from the newest prompts. ``until`` as for ``TrackingSession.propagate``.
        """
        if self.propagation_worker is not None:
            show_info("A propagation is already running.")
            return None
        self.restore_layers()
        self.fold_paint()
        self.prefetcher.pause()
        self.last_summary = None
        bar = PacedProgress(progress(total=0, desc=f"SAM 2: propagating {direction}"))
        worker = _propagation_worker(self.session, self.queue, direction, start, end, until)
        worker.yielded.connect(lambda item: self._on_propagated(item, bar))
        worker.finished.connect(lambda: self._propagation_done(bar))
        worker.errored.connect(self._propagation_failed)
        self.propagation_worker = worker
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the propagation after the frame in progress; what was done is kept."""
        self.session.stop()

    def _on_propagated(self, message: PropagationMessage, bar) -> None:
        if isinstance(message, PropagationPlanned):
            bar.set_total(message.total)
        elif isinstance(message, PropagationEnded):
            self.last_summary = message.summary
        else:
            # Take the frame in before moving to it: moving may run queued events, the end
            # of the run among them, which must find this frame already taken in.
            drawn = message.labels if isinstance(message, FrameTracked) else None
            self.refresh_frames([message.frame], drawn)
        if isinstance(message, FrameTracked):
            if self.follow:
                self.viewer.dims.set_current_step(0, message.frame)
            # Counting runs queued events, later frames among them: moved first, the
            # viewer never steps back here after them.
            bar.advance()
        self.propagation_progressed.emit(message)

    def _propagation_failed(self, exc: Exception) -> None:
        show_failure("Propagation", exc)

    def _propagation_done(self, bar) -> None:
        bar.close()
        self.propagation_worker = None
        self.update_boxes()
        self.autosave_in_background()
        self._start_previews()
        if self._idle():
            self.prefetcher.resume()
        self.propagation_finished.emit()

    # ------------------------------------------------------------ results view

    def refresh_frames(self, frames: list[int] | None, drawn: DrawnLabels | None = None) -> None:
        """Show new results of ``frames`` (None: all), ``drawn`` one of them if given."""
        self.volume.invalidate(frames)
        if drawn is not None:
            self.volume.keep(drawn)
        # Frames off screen are rendered when shown; a refresh would redo the one shown.
        if frames is None or self.current_frame() in frames or 0 in self.viewer.dims.displayed:
            self.masks_layer.refresh()
        self.boxes.mark_stale(frames)
        self.update_states(frames)

    # ------------------------------------------------------------ track states

    def build_states(self) -> None:
        """Read every frame's state again, in a worker (it reads every mask chunk)."""
        if self._states_worker is not None:
            self._states_worker.quit()
        prompted = [key for key, _ in self.session.prompts.items()]
        objects = list(self.annotation_model.registry)
        worker = _states_worker(
            self.session.results, prompted, objects, self.track_states.min_score
        )
        self._frames_since_build = set()
        worker.returned.connect(self._states_built)
        worker.errored.connect(lambda exc: show_failure("Reading the track states", exc))
        self._states_worker = worker
        worker.start()

    @property
    def states_ready(self) -> bool:
        """Whether :attr:`track_states` holds every frame (the first build has ended)."""
        return self._states_worker is None

    def _states_built(self, states: TrackStates) -> None:
        self._states_worker = None
        states.keep_objects(self.annotation_model.registry)
        states.min_score = self.track_states.min_score
        states.update(self.session.results, self.session.prompts, self._frames_since_build)
        self.track_states = states
        self.states_changed.emit(None)

    def update_states(self, frames: list[int] | None) -> None:
        """Take in the new states of ``frames`` (None: all of them, in a worker)."""
        if frames is None:
            self.build_states()
            return
        if self._states_worker is not None:
            self._frames_since_build.update(frames)
        self.track_states.update(self.session.results, self.session.prompts, frames)
        self.states_changed.emit(frames)

    def set_min_score(self, min_score: float) -> None:
        """Count masks scored below ``min_score`` as uncertain (review, timeline)."""
        self.track_states.min_score = min_score
        self.states_changed.emit(None)

    def update_boxes(self) -> None:
        self.boxes.update()

    def rebuild_boxes(self) -> None:
        self.boxes.rebuild()

    def _boxes_of(
        self, frames: set[int] | None, hidden: set[int]
    ) -> tuple[list, dict, np.ndarray]:
        """Rectangles, features and edge colours of the boxes on ``frames`` (None: all),
        leaving out ``hidden`` objects."""
        registry = self.annotation_model.registry
        rectangles, features = box_layer_data(self.session.results, registry, frames, hidden)
        palette = {o: self.object_color(o) for o in set(features["obj_id"])}
        colors = np.array([palette[o] for o in features["obj_id"]])
        return rectangles, features, colors

    def _on_masks_written(self, _event=None) -> None:
        # napari announces a stroke before it writes the stroke back to the data (for
        # data that is not a numpy array), so fold it in once that is done. Folding
        # with nothing painted costs nothing, so refreshes that wrote nothing may call.
        QTimer.singleShot(0, self.fold_paint)

    def fold_paint(self) -> None:
        """Make painted frames the truth for the results (and so boxes and exports)."""
        painted = self.volume.take_painted()
        for frame, labels in painted.items():
            fold_painted_frame(self.session.results, frame, labels)
        if painted:
            self.refresh_frames(list(painted))

    def next_review_frame(self, step: int = 1) -> int | None:
        """Go to the next frame (``step`` 1, or -1 for the one before) where the current
        object has no mask or a score below the states' ``min_score``."""
        if not self.states_ready:
            show_info("The session's masks are still being read; try again in a moment.")
            return None
        frame = self.track_states.next_problem(self.current_object, self.current_frame(), step)
        if frame is None:
            name = self.annotation_model.registry[self.current_object].name
            show_info(f"No frame to review for {name}.")
        else:
            self.viewer.dims.set_current_step(0, frame)
        return frame

    # -------------------------------------------------------------- saving

    def annotation(self) -> Annotation:
        """The annotation as it stands, paint strokes included."""
        self.fold_paint()
        return self.annotation_model.annotation()

    def save_in_background(self, folder: str | Path | None = None):
        """Save into ``folder`` (the session folder from now on) or the session folder,
        in a worker (it rewrites every frame's masks: seconds on long videos); what is
        saved is taken now. Returns the worker, not yet started."""
        self.fold_paint()
        return _save_worker(self.annotation_model.save_job(folder))

    def stop_following(self) -> None:
        """Stop answering the viewer and the layers (the tracker's dock closed): they
        stay, as plain napari layers."""
        self.viewer.dims.events.current_step.disconnect(self._on_step)
        self.boxes.stop_following()
        for layer in (self.prompts_layer, self.box_prompts_layer):
            layer.events.data.disconnect(self._on_points_data)
            layer.events.features.disconnect(self._sync_prompts)
        self.prompts_layer.mouse_drag_callbacks.remove(self._on_click)
        self.masks_layer.events.paint.disconnect(self._on_masks_written)
        self.masks_layer.events.set_data.disconnect(self._on_masks_written)
        for key in self._keys:
            self.prompts_layer.bind_key(key, None, overwrite=True)

    def close(self, in_background: bool = False) -> None:
        """Stop prefetching and keep the work: saved now (napari is closing), or in a
        worker (napari goes on)."""
        # napari going on need not wait for the encode in flight; none starts after it.
        self.prefetcher.close(wait=not in_background)
        if in_background:
            self.autosave_in_background()
        else:
            self.autosave()

    def autosave(self) -> Path | None:
        """Save now, into the session folder or the autosave area (after an autosave in
        flight); where, or None when it could not (a warning says why)."""
        self.fold_paint()
        try:
            return self.annotation_model.autosave()
        except (OSError, UserError) as exc:
            self._autosave_failed(exc)
        return None

    def autosave_in_background(self):
        """Autosave in a worker (saving rewrites every frame's masks: seconds on long
        videos); what is saved is taken now. Returns the worker."""
        self.fold_paint()
        worker = _save_worker(self.annotation_model.autosave_job())
        worker.errored.connect(self._autosave_failed)
        worker.returned.connect(self._autosaved)
        worker.start()
        return worker

    def _autosaved(self, where: Path | None) -> None:
        if where is not None:  # None: a later save superseded it
            self.autosaved.emit(where)

    def _autosave_failed(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            target = self.annotation_model.autosave_target()
            show_warning(f"Autosave to {target} failed ({exc.strerror or exc}).")
        elif isinstance(exc, UserError):  # another writer holds the folder or saved since
            show_warning(f"Autosave skipped: {exc}")
        else:
            show_failure("Autosave", exc)
        self.autosaved.emit(None)


# Errors go to the errored handlers only, not also re-raised on the main thread.
@thread_worker(ignore_errors=True)
def _preview_worker(session: TrackingSession, queue: PromptQueue):
    yield from queue.apply(session)


@thread_worker(ignore_errors=True)
def _save_worker(job) -> Path | None:
    return job()


@thread_worker(ignore_errors=True)
def _states_worker(results, prompted, objects, min_score) -> TrackStates:
    return TrackStates.build(results, prompted, objects, min_score)


@thread_worker(ignore_errors=True)
def _propagation_worker(session, queue, direction, start, end, until):
    drawer = FrameDrawer(session.results)

    def prepare(frame: int) -> DrawnLabels | None:
        # Done here, showing the frame costs the viewer's thread no decoding or drawing.
        session.frames.source[frame]
        return drawer.draw(frame)

    yield from propagation_messages(session, queue, direction, start, end, until, prepare)
