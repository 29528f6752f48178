# Two entry points: `make run` opens napari with the plugin and the sample video,
# `make test` runs the whole test suite. Both set everything up on first use and
# reuse it afterwards.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# torch/torchvision are pinned so pip takes the builds that match this machine's
# wheels instead of resolving a newer CUDA build from the index.
TORCH       ?= torch==2.14.1 torchvision==0.29.1
SAM2        ?= sam2==1.1.0

# Without a display, Qt and vispy need an X server with a GL context: Xvfb plus Mesa.
SYSTEM_PACKAGES := xvfb xauth libgl1 libegl1 libgl1-mesa-dri libglib2.0-0 libfontconfig1 \
	libdbus-1-3 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
	libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 \
	libxcb-cursor0 libxcb-xkb1

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Run GUI commands inside a virtual X server when there is no display.
XRUN := $(if $(DISPLAY),,xvfb-run -a -s "-screen 0 1600x1000x24")

.PHONY: run test lint setup system-deps clean

run: setup
	$(XRUN) $(PY) -m napari_sam2_track.demo $(ARGS)

test: setup
	$(PY) -m ruff check src tests tools benchmarks
	$(PY) -m ruff format --check src tests tools benchmarks
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check src tests tools benchmarks
	$(PY) -m ruff format --check src tests tools benchmarks

setup: system-deps $(STAMP)

system-deps:
	@if [ -z "$$DISPLAY" ] && ! command -v Xvfb >/dev/null 2>&1; then \
		echo "Installing Xvfb and Mesa for headless Qt/OpenGL..."; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
			$(SYSTEM_PACKAGES) >/dev/null; \
	fi

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q $(TORCH)
	# sam2 compiles an optional CUDA extension by default, and an isolated build would
	# fetch a second torch: build it against the torch above, without the extension.
	SAM2_BUILD_CUDA=0 $(PY) -m pip install -q --no-build-isolation $(SAM2)
	$(PY) -m pip install -q $(TORCH) -e '.[testing]'
	touch $@

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
