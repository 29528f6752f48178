"""Render the README's screenshot from a real run on a real video.

    xvfb-run -a -s "-screen 0 1600x1000x24" python tools/readme_screenshot.py \
        [--video ../shared/data/videos/02_cups.mp4] [--checkpoint PT] [--out docs/workflow.png]

Opens the video in napari, docks the SAM 2 Tracker, clicks three objects (the ball and
two cups of the cups clip) on frame 0, propagates over the first frames and saves the
window. Without ``--checkpoint`` SAM 2.1 tiny runs with random weights (no download
here), so the masks mean nothing; the layout, timeline and table are what it shows.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "napari-sam2-track"
# (row, column) of the ball and the two standing cups on frame 0 of the cups clip.
CUPS_CLICKS = ((460, 400), (420, 650), (410, 915))


def random_checkpoint(folder: Path) -> Path:
    """A SAM 2.1 tiny checkpoint with random weights, in SAM 2's own format."""
    import torch

    from napari_sam2_track.sam2_backend import build_model

    torch.manual_seed(0)
    model = build_model(image_size=256, random_weights=True, device="cpu")
    path = folder / "random_tiny.pt"
    torch.save({"model": model.predictor.state_dict()}, path)
    return path


def wait_for(signal) -> None:
    """Run Qt's event loop until ``signal`` fires."""
    from qtpy.QtCore import QEventLoop

    loop = QEventLoop()
    signal.connect(lambda *_: loop.quit())
    loop.exec()


def wait_until(condition) -> None:
    """Run Qt's event loop until ``condition()`` holds (polled every 50 ms)."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop, timer = QEventLoop(), QTimer()
    timer.timeout.connect(lambda: condition() and loop.quit())
    timer.start(50)
    if not condition():
        loop.exec()
    timer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(ROOT.parent / "shared/data/videos/02_cups.mp4"))
    parser.add_argument("--checkpoint", help="SAM 2.1 tiny weights; random ones without")
    parser.add_argument("--frames", type=int, default=30, help="frames to propagate over")
    parser.add_argument("--out", default=str(ROOT / "docs/workflow.png"))
    args = parser.parse_args()

    import napari

    # A session of its own: no autosave of an earlier run is continued.
    os.environ["NAPARI_SAM2_TRACK_AUTOSAVE"] = tempfile.mkdtemp()
    viewer = napari.Viewer(title="napari-sam2-track")
    viewer.window.resize(1400, 900)
    viewer.open(args.video, plugin=PLUGIN)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "SAM 2 Tracker")
    with tempfile.TemporaryDirectory() as folder:
        widget.checkpoint.value = args.checkpoint or random_checkpoint(Path(folder))
        widget.model.value = "sam2.1_hiera_tiny"
        widget.image_size.value = 256
        widget.device.value = "cpu"
        wait_for(widget.start_tracking().finished)
    c = widget.controller
    viewer.dims.set_current_step(0, 0)
    names = ("ball", "middle cup", "right cup")
    for index, ((row, column), name) in enumerate(zip(CUPS_CLICKS, names, strict=True)):
        if index:
            c.new_object()
        c.rename_object(c.current_object, name, "ball" if index == 0 else "cup")
        c.add_point(row, column)
    widget.limit.value = True
    widget.first_frame.value, widget.last_frame.value = 0, args.frames - 1
    wait_until(lambda: not c.previewing and not c.queue)
    worker = widget.run_propagation()
    assert worker is not None
    wait_for(c.propagation_finished)
    viewer.dims.set_current_step(0, args.frames * 2 // 3)
    c.select_object(2)
    viewer.screenshot(args.out, canvas_only=False, flash=False)
    print(f"saved {args.out}")
    viewer.close()


if __name__ == "__main__":
    main()
