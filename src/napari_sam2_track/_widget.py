"""The "SAM 2 Tracker" dock widget: thin controls over :class:`TrackerController`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    RadioButtons,
    SpinBox,
)
from magicgui.widgets.bases import ButtonWidget
from napari.qt.threading import thread_worker
from napari.utils import progress
from napari.utils.notifications import show_info, show_warning
from psygnal import Signal
from qtpy.QtCore import QEvent, QObject, QSize, Qt, QTimer
from qtpy.QtCore import Signal as QtSignal
from qtpy.QtWidgets import (
    QApplication,
    QFormLayout,
    QFrame,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from .errors import UserError
from .models import DEFAULT_MODEL, MODELS, SYNTHETIC_MODEL, model_for_synthetic_video
from .notices import show_failure
from .object_table import ObjectRow, ObjectTable
from .paced_progress import PacedProgress
from .prompts import NEGATIVE, POSITIVE
from .propagation import DIRECTIONS
from .sam2_backend.feature_cache import default_budget
from .specks import DEFAULT_SPECKS, SpeckRule
from .store import MANIFEST
from .synthetic import SYNTHETIC_KEY
from .timeline_view import TimelineRow, TimelineView

if TYPE_CHECKING:
    from collections.abc import Callable

    import napari

    from .controller import TrackerController

#: Keys on the prompts layer, for what they do: (key, action, method of the widget).
SHORTCUTS = (
    ("N", "new object", "_on_new_object"),
    (",", "previous object", None),
    (".", "next object", None),
    ("T", "toggle on / not on", None),
    ("Shift+P", "propagate", "run_propagation"),
    ("Shift+C", "cancel the propagation", "cancel_propagation"),
    ("[", "previous problem", "previous_problem_frame"),
    ("]", "next problem", "next_problem_frame"),
)
HELP = (
    "<b>Prompting</b>: select the SAM2 prompts layer in pan/zoom mode and click: "
    "left = on the object, right or Ctrl+click = not on it. Points added, moved or "
    "deleted with napari's own tools count too. To prompt with a box, draw a rectangle "
    "in SAM2 box prompts. Keys on the prompts layer: "
    + ", ".join(f"<b>{key}</b> {action}" for key, action, _ in SHORTCUTS)
    + ". In the object table: <b>Delete</b> removes, <b>H</b> hides or shows, "
    "<b>F2</b> renames. Click the timeline to go to a frame."
)


def _key_button(text: str, tooltip: str, action: str) -> PushButton:
    """A button whose tooltip names the key of its ``action`` in :data:`SHORTCUTS`."""
    key = next(key for key, name, _ in SHORTCUTS if name == action)
    return PushButton(text=text, tooltip=f"{tooltip} ({key} on the prompts layer)")


def describe_video_layer(layer) -> str:
    """One line about an image layer as a video: frames, size, fps, source."""
    if layer is None:
        return "Open a video (File > Open) or a sample (File > Open Sample)."
    shape = layer.data.shape
    spatial = shape[1:3] if layer.rgb else shape[1:]
    if layer.ndim < 3:
        return f"{layer.name} has no time axis; choose a layer with frames."
    fps = layer.metadata.get("fps")
    rate = f", {fps:g} fps" if fps else ""
    return f"{shape[0]} frames of {spatial[-1]}×{spatial[-2]}{rate}"


class TrackerWidget(Container):
    """Video and model choice, objects, propagation, review and saving, in collapsible
    groups; the track timeline docks below the canvas once tracking starts."""

    #: Emitted when an export has ended, written or not.
    export_finished = Signal()
    #: A Save ended: the session folder, or None when it could not be saved.
    session_saved = Signal(object)

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        self._viewer = napari_viewer
        self.controller: TrackerController | None = None
        self.timeline: TimelineView | None = None
        self._model_status = ""
        self._build()
        napari_viewer.layers.events.inserted.connect(self._on_layer_inserted)
        napari_viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()
        self._suggest_model(self.video_layer.value)
        self._update_enabled()
        self._fit = FitWhenShown(napari_viewer, self.native)
        # The table's counts follow the states a few times a second, not every frame.
        self._counts_timer = QTimer(self.native)
        self._counts_timer.setSingleShot(True)
        self._counts_timer.setInterval(250)
        self._counts_timer.timeout.connect(self._refresh_counts)

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.video_layer = ComboBox(label="Video", choices=self._image_layers)
        self.video_info = Label(label="")
        self.model = ComboBox(label="Model", choices=list(MODELS), value=DEFAULT_MODEL)
        self.device = ComboBox(label="Device", choices=["auto", "cpu", "cuda", "mps"])
        self.image_size = SpinBox(label="Image size", value=1024, min=64, max=2048, step=32)
        self.feature_cache = SpinBox(
            label="Feature cache (MB)",
            value=default_budget() // 2**20,
            min=0,
            max=2**20,
            step=256,
            tooltip="Image features kept so that no frame is encoded twice; 0 keeps none",
        )
        self.features_on_disk = CheckBox(
            text="Keep features on disk",
            tooltip="Also keep image features in the user cache folder, so reopening this "
            "video with the same model and size encodes no frame again",
        )
        self.speck_area = FloatSpinBox(
            label="Speck area",
            value=DEFAULT_SPECKS.area_share,
            min=0.0,
            max=0.99,
            step=0.01,
            tooltip="Boxes leave out pieces of a mask at most this share of its largest "
            "piece's area and far from it (0: boxes span every pixel)",
        )
        self.speck_gap = FloatSpinBox(
            label="Speck gap",
            value=DEFAULT_SPECKS.gap_share,
            min=0.0,
            max=10.0,
            step=0.01,
            tooltip="Far: more than this share of the largest piece's longer side away",
        )
        self.remove_specks = CheckBox(
            text="Remove specks from masks",
            tooltip="Also take specks out of the masks (kept as SAM 2 gave them otherwise)",
        )
        self.checkpoint = FileEdit(
            label="Checkpoint",
            mode="r",
            nullable=True,
            tooltip="A local weights file; empty: download",
        )
        self.start = PushButton(text="Start tracking")
        self.status = Label(label="", value="No model loaded.")
        self.objects = ObjectTable()
        self.new_object = _key_button("New object", "Add an object to track", "new object")
        self.delete_object = PushButton(
            text="Delete object",
            tooltip="Remove the selected object: its prompts, masks and boxes everywhere "
            "(Delete in the table)",
        )
        self.point_label = RadioButtons(
            label="Click",
            choices=[("on the object", POSITIVE), ("not on it", NEGATIVE)],
            value=POSITIVE,
            orientation="horizontal",
        )
        self.direction = ComboBox(label="Direction", choices=list(DIRECTIONS))
        self.limit = CheckBox(text="Only frames", value=False)
        self.first_frame = SpinBox(label="from", min=0, max=0)
        self.last_frame = SpinBox(label="to", min=0, max=0)
        self.to_end = CheckBox(
            text="Re-track to the end",
            value=False,
            tooltip="Off: a re-track stops where its masks re-join the previous ones",
        )
        self.follow = CheckBox(text="Follow frames while propagating", value=True)
        self.propagate = _key_button("Propagate", "Track the objects", "propagate")
        self.cancel = _key_button(
            "Cancel",
            "Stop after the frame in progress, keeping what was done",
            "cancel the propagation",
        )
        self.min_score = FloatSpinBox(
            label="Review below",
            value=0.5,
            min=0,
            max=1,
            step=0.05,
            tooltip="Masks SAM 2 scores below this are problems (amber in the timeline)",
        )
        problem = "frame where the object has no mask or a low score"
        self.previous_problem = _key_button(
            "◀ Previous problem", f"The previous {problem}", "previous problem"
        )
        self.next_problem = _key_button("Next problem ▶", f"The next {problem}", "next problem")
        self.mask_prompt = PushButton(text="Send painted mask to SAM 2")
        self.folder = FileEdit(label="Session", mode="d", nullable=True)
        self.save = PushButton(text="Save")
        self.open = PushButton(text="Open session")
        self.export_format = ComboBox(label="Export as", choices=_export_choices())
        self.export_to = FileEdit(label="to", mode="w", nullable=True)
        self.export_images = CheckBox(text="with frame images", value=False)
        self.export = PushButton(text="Export")
        self.status.native.setWordWrap(True)
        self.video_info.native.setWordWrap(True)
        wrapping = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        wrapping.setHeightForWidth(True)  # as tall as its wrapped lines
        self.status.native.setSizePolicy(wrapping)
        help_text = Label(value=HELP)
        help_text.native.setWordWrap(True)
        self.groups = {
            "Video and model": [
                self.video_layer,
                self.video_info,
                self.model,
                self.device,
                self.image_size,
                self.checkpoint,
                self.feature_cache,
                self.features_on_disk,
                self.speck_area,
                self.speck_gap,
                self.remove_specks,
                self.start,
            ],
            "Objects and prompts": [
                self.objects,
                Container(widgets=[self.new_object, self.delete_object], layout="horizontal"),
                self.point_label,
                self.mask_prompt,
            ],
            "Propagation": [
                self.direction,
                self.limit,
                self.first_frame,
                self.last_frame,
                self.to_end,
                self.follow,
                Container(widgets=[self.propagate, self.cancel], layout="horizontal"),
            ],
            "Review": [
                self.min_score,
                Container(widgets=[self.previous_problem, self.next_problem], layout="horizontal"),
            ],
            "Session and export": [
                self.folder,
                Container(widgets=[self.save, self.open], layout="horizontal"),
                self.export_format,
                self.export_to,
                self.export_images,
                self.export,
            ],
            "Help": [help_text],
        }
        #: The collapsible sections, by title.
        self.sections = {title: _section(title, widgets) for title, widgets in self.groups.items()}
        parts = [self.status.native, *self.sections.values()]
        self.native.layout().addWidget(_scrolling(parts))
        self.sections["Help"].collapse(animate=False)
        self.video_layer.changed.connect(self._show_video_info)
        self.video_layer.changed.connect(self._suggest_model)
        self.model.changed.connect(self._on_model_chosen)
        self.start.clicked.connect(self.start_tracking)
        self.objects.object_selected.connect(self._on_object_chosen)
        self.objects.object_renamed.connect(self._on_object_renamed)
        self.objects.visibility_changed.connect(self._on_visibility)
        self.objects.delete_requested.connect(lambda obj_id: self.controller.delete_object(obj_id))
        self.new_object.clicked.connect(self._on_new_object)
        self.delete_object.clicked.connect(self._on_delete_object)
        self.point_label.changed.connect(self._on_point_label)
        self.propagate.clicked.connect(self.run_propagation)
        self.cancel.clicked.connect(self.cancel_propagation)
        self.follow.changed.connect(self._on_follow)
        self.min_score.changed.connect(self._on_min_score)
        self.previous_problem.clicked.connect(self.previous_problem_frame)
        self.next_problem.clicked.connect(self.next_problem_frame)
        self.mask_prompt.clicked.connect(self._on_mask_prompt)
        self.save.clicked.connect(self.save_session)
        self.open.clicked.connect(self.open_session)
        self.export.clicked.connect(self.run_export)

    def _update_enabled(self) -> None:
        tracking = self.controller is not None
        busy = tracking and self.controller.propagation_worker is not None
        for widget in (
            self.video_layer,
            self.model,
            self.device,
            self.image_size,
            self.feature_cache,
            self.features_on_disk,
            self.speck_area,
            self.speck_gap,
            self.remove_specks,
            self.checkpoint,
            self.start,
        ):
            widget.enabled = not tracking
        self.objects.setEnabled(tracking)
        for widget in (
            self.new_object,
            self.delete_object,
            self.point_label,
            self.previous_problem,
            self.next_problem,
            self.mask_prompt,
            self.save,
            self.export,
        ):
            widget.enabled = tracking
        self.propagate.enabled = tracking and not busy
        self.cancel.enabled = busy

    # ----------------------------------------------------------- video layers

    def _image_layers(self, _widget=None) -> list:
        from napari.layers import Image

        return [layer for layer in self._viewer.layers if isinstance(layer, Image)]

    def _refresh_layers(self, _event=None) -> None:
        self.video_layer.reset_choices()
        self._show_video_info()

    def _on_layer_inserted(self, event) -> None:
        self._refresh_layers()
        # A video that was just opened is almost always the one to annotate next; the
        # tracked one, put back after it was removed, is the one being annotated.
        tracked = self.controller is not None and event.value == self.controller.video_layer
        if (self.controller is None or tracked) and event.value in self.video_layer.choices:
            self.video_layer.value = event.value

    def _show_video_info(self, _value=None) -> None:
        layer = self.video_layer.value
        self.video_info.value = describe_video_layer(layer)
        if layer is not None and layer.ndim >= 3:
            last = layer.data.shape[0] - 1
            for spin in (self.first_frame, self.last_frame):
                spin.max = last
            self.last_frame.value = last

    def _suggest_model(self, layer=None) -> None:
        """The bundled miniature model for synthetic videos when no official checkpoint
        is cached (so the sample works offline), and never for real footage."""
        if self.controller is not None or layer is None:
            return
        if layer.metadata.get(SYNTHETIC_KEY):
            self.model.value = model_for_synthetic_video()
        elif self.model.value == SYNTHETIC_MODEL:
            self.model.value = DEFAULT_MODEL

    def _on_model_chosen(self, name: str) -> None:
        self.image_size.value = MODELS[name].image_size

    # --------------------------------------------------------------- tracking

    def start_tracking(self):
        """Load the model off the UI thread, then start (or restore) the session."""
        layer = self.video_layer.value
        if layer is None or layer.ndim < 3:
            show_warning("Choose a video layer with a time axis first.")
            return None
        self.start.enabled = False
        self.status.value = "Loading SAM 2…"
        download = progress(desc="SAM 2 checkpoint")
        worker = _load_model(
            self.model.value,
            self.checkpoint.value,
            self.device.value,
            self.image_size.value,
            download,
        )
        worker.returned.connect(lambda model: self._model_ready(layer, model))
        worker.errored.connect(self._model_failed)
        worker.finished.connect(download.close)
        worker.start()
        return worker

    def _model_ready(self, layer, model) -> None:
        from .controller import TrackerController
        from .engine import TrackingSession
        from .session_io import restorable_session

        cache_bytes = self.feature_cache.value * 2**20
        session = TrackingSession(
            layer.data,
            model,
            specks=SpeckRule(self.speck_area.value, self.speck_gap.value),
            remove_specks=self.remove_specks.value,
            feature_cache_bytes=cache_bytes,
            features_on_disk=self.features_on_disk.value,
        )
        folder, annotation = restorable_session(layer)
        if annotation is not None:
            session.restore(annotation.prompts, annotation.results, annotation.pending_frames)
            for warning in annotation.warnings:
                show_warning(f"While restoring: {warning}")
        registry = annotation.objects if annotation is not None else None
        self.controller = TrackerController(
            self._viewer, layer, session, registry, folder, stored=annotation
        )
        self.controller.follow = self.follow.value
        self.controller.set_min_score(self.min_score.value)
        self.controller.objects_changed.connect(self._refresh_objects)
        self.controller.states_changed.connect(self._on_states_changed)
        self.controller.propagation_finished.connect(self._update_enabled)
        self.controller.propagation_finished.connect(self._show_what_was_tracked)
        self._bind_shortcuts(self.controller.prompts_layer)
        self._dock_timeline()
        # Closing the dock or napari (or crashing after a propagation) must not lose work.
        controller = self.controller
        self._detach_when_gone = lambda *_: _detach(controller)
        self.native.destroyed.connect(self._detach_when_gone)
        WhenUndocked(self.native, self._undocked)
        QApplication.instance().aboutToQuit.connect(controller.close)
        if folder is not None:
            self.folder.value = folder
        self._model_status = f"{model.name} on {model.device.type}, {model.image_size} px."
        self.status.value = self._model_status
        self._refresh_objects()
        self._update_enabled()
        self.sections["Video and model"].collapse(animate=False)

    def _bind_shortcuts(self, layer, bind: bool = True) -> None:
        """The keys of :data:`SHORTCUTS` that call this widget, bound (or unbound)."""
        for key, _, method in SHORTCUTS:
            if method is not None:
                action = getattr(self, method)
                call = (lambda _layer, a=action: a()) if bind else None
                layer.bind_key(key, call, overwrite=True)

    def _dock_timeline(self) -> None:
        """The track timeline, docked below the canvas."""
        c = self.controller
        self.timeline = TimelineView(c.track_states)
        self.timeline.frame_clicked.connect(self._go_to_frame)
        self.timeline.object_clicked.connect(c.select_object)
        self.timeline.destroyed.connect(self._forget_timeline)
        WhenUndocked(self.timeline, self._timeline_closed)
        self._viewer.dims.events.current_step.connect(self._show_current)
        self._viewer.window.add_dock_widget(
            self.timeline, name="SAM 2 timeline", area="bottom", tabify=False
        )
        self._refresh_objects()

    def _forget_timeline(self, *_) -> None:
        self.timeline = None

    def _timeline_closed(self) -> None:
        timeline, self.timeline = self.timeline, None
        if timeline is not None:
            timeline.deleteLater()

    def _undocked(self) -> None:
        """This dock was closed: the work is kept, its keys and prefetching stop, and the
        timeline's dock goes too."""
        self.native.destroyed.disconnect(self._detach_when_gone)
        self._bind_shortcuts(self.controller.prompts_layer, bind=False)
        _detach(self.controller, in_background=True)
        self._viewer.dims.events.current_step.disconnect(self._show_current)
        if self.timeline is not None:
            self._viewer.window.remove_dock_widget(self.timeline)  # see _timeline_closed

    def _go_to_frame(self, frame: int) -> None:
        self._viewer.dims.set_current_step(0, frame)

    def _show_current(self, _event=None) -> None:
        c = self.controller
        if self.timeline is not None and c is not None:
            self.timeline.set_current(c.current_frame(), c.current_object)

    def _on_states_changed(self, _frames=None) -> None:
        """Frames' states changed: the timeline draws again, the table's counts follow."""
        if self.timeline is not None:
            self.timeline.set_states(self.controller.track_states)
        self._counts_timer.start()

    def _model_failed(self, exc: Exception) -> None:
        self.status.value = "No model loaded."
        self.start.enabled = True
        show_failure("Loading SAM 2", exc)

    def run_propagation(self):
        if self.controller is None:
            return None
        start = self.first_frame.value if self.limit.value else None
        end = self.last_frame.value if self.limit.value else None
        until = "end" if self.to_end.value else "rejoin"
        worker = self.controller.propagate(self.direction.value, start, end, until)
        self._update_enabled()
        return worker

    def cancel_propagation(self) -> None:
        """Stop the propagation after the frame in progress."""
        if self.controller is not None:
            self.controller.cancel()

    def _show_what_was_tracked(self) -> None:
        summary = self.controller.last_summary
        self.status.value = self._model_status + (f" {summary}" if summary else "")

    def _on_follow(self, value: bool) -> None:
        if self.controller is not None:
            self.controller.follow = value

    def _on_min_score(self, value: float) -> None:
        if self.controller is not None:
            self.controller.set_min_score(value)

    def previous_problem_frame(self) -> int | None:
        """Go to the previous frame where the current object has no mask or a low score."""
        return self._review(-1)

    def next_problem_frame(self) -> int | None:
        """Go to the next frame where the current object has no mask or a low score."""
        return self._review(1)

    def _review(self, step: int) -> int | None:
        if self.controller is None:
            return None
        return self.controller.next_review_frame(step)

    def _on_mask_prompt(self) -> None:
        if self.controller is not None:
            c = self.controller
            c.send_mask_prompt(c.current_frame(), c.current_object)

    # ---------------------------------------------------------------- objects

    def _refresh_objects(self) -> None:
        """The table and the timeline show the objects as they are now."""
        c = self.controller
        rows = object_rows(c)
        self.objects.show_objects(rows, c.current_object)
        if self.timeline is not None:
            timeline_rows = [TimelineRow(r.obj_id, r.name, r.rgba) for r in rows]
            self.timeline.set_rows(timeline_rows, c.hidden)
            self._show_current()

    def _refresh_counts(self) -> None:
        c = self.controller
        if c is not None:
            self.objects.show_objects(object_rows(c), c.current_object)

    def _on_object_chosen(self, obj_id: int) -> None:
        if self.controller is not None and obj_id != self.controller.current_object:
            self.controller.select_object(obj_id)

    def _on_new_object(self) -> None:
        if self.controller is not None:
            self.controller.new_object()

    def _on_delete_object(self) -> None:
        self.controller.delete_object(self.controller.current_object)

    def _on_object_renamed(self, obj_id: int, name: str, category: str) -> None:
        self.controller.rename_object(obj_id, name, category)

    def _on_visibility(self, obj_id: int, visible: bool) -> None:
        self.controller.set_visible(obj_id, visible)

    def _on_point_label(self, value: int) -> None:
        if self.controller is not None and self.controller.current_label != value:
            self.controller.toggle_label()

    # ---------------------------------------------------------------- session

    def save_session(self):
        """Save into the Session field's folder, in a worker; ``session_saved`` carries
        the folder, or None when it could not be saved (a warning says why)."""
        folder = self.folder.value
        if self.controller is None:
            return None
        if not folder or str(folder) in ("", "."):
            show_warning("Choose a session folder to save in (Session field).")
            return None
        worker = self.controller.save_in_background(Path(folder))
        worker.returned.connect(self._session_saved)
        worker.errored.connect(lambda exc: self._session_not_saved(folder, exc))
        worker.start()
        return worker

    def _session_saved(self, folder: Path) -> None:
        show_info(f"Saved the session to {folder}.")
        self.session_saved.emit(folder)

    def _session_not_saved(self, folder: Path, exc: Exception) -> None:
        if isinstance(exc, UserError):
            show_warning(f"Could not save the session: {exc}")
        elif isinstance(exc, OSError):  # a full disk or a folder one may not write to
            show_warning(f"Could not save the session in {folder}: {exc.strerror or exc}.")
        else:
            show_failure("Saving the session", exc)
        self.session_saved.emit(None)

    def open_session(self) -> None:
        """Open the session folder in the Session field.

        If it belongs to the chosen video (a sample or any layer without a file, too),
        tracking that video continues the session; otherwise the folder opens with its
        own video and layers.
        """
        from .session_io import SESSION_KEY
        from .store import is_session_folder, load_session
        from .video_ref import VideoRef

        folder = self.folder.value
        if not folder or not is_session_folder(folder):
            show_warning(f"Choose a session folder (one holding {MANIFEST}) to open.")
            return
        layer = self.video_layer.value
        if self.controller is None and layer is not None and layer.ndim >= 3:
            try:
                stored = load_session(folder)
            except UserError as exc:
                show_warning(f"Could not open the session: {exc}")
                return
            video = VideoRef.from_source(layer.data, layer.metadata.get("source_path"))
            if stored.video.mismatch(video) is None:
                layer.metadata[SESSION_KEY] = str(folder)
                show_info(
                    f"{Path(folder).name} belongs to {layer.name}: Start tracking continues it."
                )
                return
        self._viewer.open(str(folder), plugin="napari-sam2-track")

    def run_export(self):
        """Export the annotations (as saved now) in a worker, with progress."""
        target = self.export_to.value
        if self.controller is None or not target or str(target) in ("", "."):
            show_warning("Choose where to export to first.")
            return None
        annotation = self.controller.annotation()
        bar = PacedProgress(progress(total=0, desc=f"Exporting {self.export_format.value}"))
        # Made here, so the writer thread's reports reach the bar on this thread.
        relay = ProgressRelay()
        relay.advanced.connect(bar.show)
        worker = _export(
            annotation,
            self.export_format.value,
            Path(target),
            self.export_images.value,
            relay.advanced.emit,
        )
        worker.returned.connect(lambda path: show_info(f"Exported to {path}."))
        worker.errored.connect(lambda exc: show_failure("Export", exc))
        worker.finished.connect(bar.close)
        # A lambda, not the bound method: it holds the relay until the export ends.
        worker.finished.connect(lambda: relay.deleteLater())
        worker.finished.connect(self.export_finished.emit)
        worker.start()
        return worker


def _detach(controller: TrackerController, in_background: bool = False) -> None:
    """The dock is gone: its views stop listening, and the work is kept. With napari
    going on (``in_background``), a propagation stops where it is, the work is saved
    in a worker, and the layers stay as plain layers."""
    for signal in (controller.objects_changed, controller.states_changed):
        signal.disconnect()
    if in_background:
        controller.cancel()
        controller.close(in_background=True)
        controller.stop_following()
    else:
        controller.close()


def object_rows(controller: TrackerController) -> list[ObjectRow]:
    """What the object table shows of each registered object."""
    states = controller.track_states
    return [
        ObjectRow(
            obj_id,
            info.name,
            info.category,
            tuple(controller.object_color(obj_id)),
            obj_id not in controller.hidden,
            states.frames_with_mask(obj_id),
            states.prompted_frames(obj_id),
        )
        for obj_id, info in sorted(controller.annotation_model.registry.items())
    ]


def _scrolling(widgets: list[QWidget]) -> QScrollArea:
    """``widgets`` one above the other, scrolling when the dock is shorter than they are."""
    body = QWidget()
    layout = QVBoxLayout(body)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    layout.addStretch()
    area = _VerticalScrollArea()
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(body)
    return area


class _VerticalScrollArea(QScrollArea):
    """Scrolls up and down only: as wide as the widest of what it holds."""

    def minimumSizeHint(self) -> QSize:
        width = (
            self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
        )
        return QSize(width, super().minimumSizeHint().height())


def _section(title: str, widgets: list) -> QCollapsible:
    """A collapsible, expanded group of widgets (magicgui's or Qt's), labelled in a form."""
    content = QWidget()
    layout = QFormLayout(content)
    layout.setContentsMargins(4, 0, 4, 4)
    for widget in widgets:
        if isinstance(widget, QWidget):
            layout.addRow(widget)
        elif isinstance(widget, ButtonWidget) or not widget.label:
            layout.addRow(widget.native)
        else:
            layout.addRow(widget.label, widget.native)
    section = QCollapsible(title)
    section.addWidget(content)
    section.expand(animate=False)
    return section


def _export_choices() -> list[tuple[str, str]]:
    from .exports import EXPORTERS

    return [(f"{name} ({e.output})", name) for name, e in EXPORTERS.items()]


class FitWhenShown(QObject):
    """Fits the view to the layers once the widget first shows: docking it narrows the
    canvas, which would crop the video otherwise."""

    def __init__(self, viewer: napari.viewer.Viewer, widget: QWidget):
        super().__init__(widget)
        self._viewer = viewer
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show:
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self._viewer.reset_view)  # once the layout has settled
        return False


class WhenUndocked(QObject):
    """Calls ``undocked`` when napari takes the widget out of its dock (the dock's close
    button); not when napari closes, which destroys the widget in its dock."""

    def __init__(self, widget: QWidget, undocked: Callable[[], None]):
        super().__init__(widget)
        self._undocked = undocked
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ParentChange and watched.parent() is None:
            watched.removeEventFilter(self)
            self._undocked()
        return False


class ProgressRelay(QObject):
    """Carries ``(done, total)`` from a worker thread to the thread that made it."""

    advanced = QtSignal(int, int)


# Errors go to the errored handlers only, not also re-raised on the main thread.
@thread_worker(ignore_errors=True)
def _export(annotation, export_format, target, write_images, report):
    """Write the export, calling ``report(done, total)`` as it goes; returns the path."""
    from .exports import export

    return export(annotation, export_format, target, report, write_images=write_images)


@thread_worker(ignore_errors=True)
def _load_model(name, checkpoint, device, image_size, download):
    from .sam2_backend import build_model

    checkpoint = checkpoint if checkpoint and str(checkpoint) not in ("", ".") else None
    return build_model(name, checkpoint, device, image_size, progress=download)
