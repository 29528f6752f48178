"""The "SAM 2 Tracker" dock widget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, Label

if TYPE_CHECKING:
    import napari


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
    """Chooses the video layer to annotate; tracking controls build on this."""

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        self._viewer = napari_viewer
        self.video_layer = ComboBox(label="Video", choices=self._image_layers)
        self.video_info = Label()
        self.extend([Label(value="<b>Video</b>"), self.video_layer, self.video_info])
        self.video_layer.changed.connect(self._show_video_info)
        napari_viewer.layers.events.inserted.connect(self._on_layer_inserted)
        napari_viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()
        self.video_layer.native.setToolTip("The time-stacked image layer to annotate.")

    def _image_layers(self, _widget=None) -> list:
        from napari.layers import Image

        return [layer for layer in self._viewer.layers if isinstance(layer, Image)]

    def _refresh_layers(self, _event=None) -> None:
        self.video_layer.reset_choices()
        self._show_video_info()

    def _on_layer_inserted(self, event) -> None:
        self._refresh_layers()
        # A video that was just opened is almost always the one to annotate next.
        if event.value in self.video_layer.choices:
            self.video_layer.value = event.value

    def _show_video_info(self, _value=None) -> None:
        self.video_info.value = describe_video_layer(self.video_layer.value)
