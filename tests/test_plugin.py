"""The plugin inside a real napari viewer: manifest, reader, sample data, dock widget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_sam2_track import models
from napari_sam2_track.video import VideoFrames

from conftest import counting_frames, write_video

PLUGIN = "napari-sam2-track"


def test_the_top_level_manifest_is_the_packaged_one():
    root = Path(__file__).resolve().parents[1]
    packaged = root / "src" / "napari_sam2_track" / "napari.yaml"
    assert not packaged.is_symlink()  # a Windows checkout would make it a text file
    copy = root / "napari.yaml"
    assert copy.read_bytes() == packaged.read_bytes(), f"copy {packaged} over {copy}"


def test_installed_manifest_validates():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution(PLUGIN)
    manifest.validate_imports()
    contributions = manifest.contributions
    assert [w.display_name for w in contributions.widgets] == ["SAM 2 Tracker"]
    assert {"*.mp4", "*.webm", "*.mkv"} <= set(contributions.readers[0].filename_patterns)
    assert contributions.readers[0].accepts_directories


@pytest.fixture
def errors_shown():
    from napari.utils.notifications import NotificationSeverity, notification_manager

    shown: list[str] = []

    def record(notification):
        if notification.severity == NotificationSeverity.ERROR:
            shown.append(notification.message)

    notification_manager.notification_ready.connect(record)
    yield shown
    notification_manager.notification_ready.disconnect(record)


def test_video_opens_as_one_lazy_rgb_layer(make_napari_viewer, bedroom):
    viewer = make_napari_viewer()
    layers = viewer.open(bedroom, plugin=PLUGIN)
    assert len(layers) == 1
    layer = layers[0]
    assert layer.name == "bedroom"
    assert layer.rgb
    assert layer.data.shape == (200, 540, 960, 3)
    assert isinstance(layer.data, VideoFrames)  # never materialised
    assert layer.metadata["fps"] == pytest.approx(30.0)
    assert layer.metadata["source_path"] == str(bedroom.resolve())
    viewer.dims.set_current_step(0, 150)
    assert 150 in layer.data._cache  # napari sliced the frame it shows


def test_frame_folder_opens_through_napari(make_napari_viewer, tmp_path):
    import imageio.v3 as iio

    for i, frame in enumerate(counting_frames(5)):
        iio.imwrite(tmp_path / f"{i:04d}.jpg", frame)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(tmp_path, plugin=PLUGIN)
    assert layer.data.shape == (5, 64, 96, 3)


def test_bad_video_shows_one_sentence_and_adds_nothing(make_napari_viewer, tmp_path, errors_shown):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01 not a video" * 1000)
    viewer = make_napari_viewer()
    good = write_video(tmp_path / "good.mp4", counting_frames(8))
    viewer.open(good, plugin=PLUGIN)
    assert viewer.open(bad, plugin=PLUGIN) == []
    assert [layer.name for layer in viewer.layers] == ["good"]
    assert len(errors_shown) == 1
    assert errors_shown[0].startswith("Could not open broken.mp4:")
    assert "\n" not in errors_shown[0]


def test_reader_declines_what_it_cannot_open(tmp_path):
    from napari_sam2_track._reader import get_reader

    (tmp_path / "notes.txt").write_text("x")
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path)) is None  # a folder with no frames
    assert get_reader(str(tmp_path / "clip.MP4")) is not None


def test_sample_video_loads_through_napari(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "synthetic")
    (layer,) = viewer.layers
    assert layer.rgb
    assert layer.data.shape[0] == 60
    assert layer.data.dtype == np.uint8


def test_dock_widget_follows_the_image_layers(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "no-checkpoints"))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "SAM 2 Tracker")
    assert widget.video_layer.value is None
    viewer.open_sample(PLUGIN, "synthetic")
    assert widget.video_layer.value is viewer.layers["synthetic shapes"]
    assert "60 frames of 480×360" in widget.video_info.value
    # Nothing cached: the sample gets the bundled model at the size it was trained at.
    assert (widget.model.value, widget.image_size.value) == (models.SYNTHETIC_MODEL, 320)
    video = viewer.open(write_video(tmp_path / "clip.mp4", counting_frames(8)), plugin=PLUGIN)[0]
    viewer.add_points(np.zeros((0, 3)))
    assert widget.video_layer.value is video
    assert [c.name for c in widget.video_layer.choices] == ["synthetic shapes", "clip"]
    # ... which is not for real footage.
    assert (widget.model.value, widget.image_size.value) == (models.DEFAULT_MODEL, 1024)
    viewer.layers.remove(video)
    assert widget.video_layer.value is viewer.layers["synthetic shapes"]
    assert widget.model.value == models.SYNTHETIC_MODEL
