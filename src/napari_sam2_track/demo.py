"""Open napari with the plugin docked and the sample video loaded.

``python -m napari_sam2_track.demo [VIDEO] [--screenshot PNG]``: with ``--screenshot``
the window is rendered to a PNG and napari closes, which is how a headless machine
shows what a person would see.
"""

from __future__ import annotations

import argparse

PLUGIN = "napari-sam2-track"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", help="a video file or frame folder to open")
    parser.add_argument("--screenshot", metavar="PNG", help="save the window and exit")
    args = parser.parse_args(argv)

    import napari

    viewer = napari.Viewer(title="napari-sam2-track")
    if args.video:
        viewer.open(args.video, plugin=PLUGIN)
    else:
        viewer.open_sample(PLUGIN, "synthetic")
    viewer.window.add_plugin_dock_widget(PLUGIN, "SAM 2 Tracker")
    if args.screenshot:
        from qtpy.QtWidgets import QApplication

        QApplication.processEvents()
        viewer.screenshot(args.screenshot, canvas_only=False, flash=False)
        print(f"saved {args.screenshot}")
        viewer.close()
        return
    napari.run()


if __name__ == "__main__":
    main()
