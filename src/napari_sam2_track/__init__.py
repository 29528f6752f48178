"""Human-in-the-loop video annotation with SAM 2 in napari."""

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("napari-sam2-track")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "unknown"

__all__ = ["__version__"]
