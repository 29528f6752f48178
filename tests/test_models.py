"""Model registry, checkpoint download (from a loopback HTTP server) and weight loading."""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from napari_sam2_track import models
from napari_sam2_track.models import CheckpointError, ModelSpec, UnknownModelError

PAYLOAD_BYTES = 3 * (1 << 20) + 12_345  # a few of the downloader's 1 MiB chunks


def assert_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert message.endswith("."), message
    assert message[0].isupper() or message[0] == "/", message


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        self.server.requests[self.path] += 1
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serves tmp_path/"served" on 127.0.0.1 and counts GET requests per path."""
    # A proxy configured in the environment must not intercept loopback requests.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.requests = collections.Counter()
    httpd.root = root
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def dead_url():
    """A loopback URL on a port that is bound but not listening: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/tiny_test.pt"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(models.CACHE_ENV, str(folder))
    return folder


@pytest.fixture(scope="session")
def payload() -> bytes:
    return os.urandom(PAYLOAD_BYTES)


def make_spec(url: str, data: bytes | None, size: bool = True, sha: bool = True) -> ModelSpec:
    return ModelSpec(
        name="tiny_test",
        config="configs/sam2.1/sam2.1_hiera_t.yaml",
        url=url,
        size_bytes=len(data) if data is not None and size else None,
        sha256=hashlib.sha256(data).hexdigest() if data is not None and sha else None,
        description="test file",
    )


def serve(server, data: bytes, name: str = "tiny_test.pt") -> str:
    (server.root / name).write_bytes(data)
    return server.base_url + name


# -- registry -------------------------------------------------------------------------------


def test_registry_configs_exist_in_installed_sam2():
    import sam2

    root = Path(sam2.__file__).parent
    assert models.DEFAULT_MODEL in models.MODELS
    for name, spec in models.MODELS.items():
        assert spec.name == name
        if spec.bundled:  # ships inside this package; tests/test_mini_model.py checks it
            assert (models.BUNDLED_DIR / spec.config).is_file(), spec.config
            continue
        assert (root / spec.config).is_file(), spec.config
        assert spec.url.startswith("https://dl.fbaipublicfiles.com/segment_anything_2/")
        assert spec.filename == f"{name}.pt"
    tiny = models.get_model("sam2.1_hiera_tiny")
    assert tiny.size_bytes == 156_008_466
    assert tiny.sha256.startswith("7402e0d864fa")
    assert models.get_model("sam2_hiera_large").sha256 is None


def test_unknown_model_name():
    with pytest.raises(UnknownModelError) as info:
        models.get_model("sam3_huge")
    assert isinstance(info.value, CheckpointError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert_sentence(message)
    assert "sam3_huge" in message and "sam2.1_hiera_tiny" in message


def test_import_does_not_import_torch():
    code = "import sys, napari_sam2_track.models; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv(models.CACHE_ENV, raising=False)
    default = models.cache_dir()
    assert default.name == "checkpoints" and "napari-sam2-track" in str(default)
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    assert models.cache_dir() == tmp_path


def test_list_models_and_cached_checkpoint(cache):
    cache.mkdir()
    (cache / "sam2.1_hiera_small.pt").write_bytes(b"x")
    rows = {row["name"]: row for row in models.list_models()}
    assert set(rows) == set(models.MODELS)
    assert rows["sam2.1_hiera_small"]["cached"] is True
    assert rows["sam2.1_hiera_small"]["path"] == cache / "sam2.1_hiera_small.pt"
    tiny = rows["sam2.1_hiera_tiny"]
    assert (tiny["cached"], tiny["path"]) == (False, None)
    assert rows["sam2.1_hiera_large"]["size_bytes"] == 898_083_611
    assert models.cached_checkpoint(models.get_model("sam2.1_hiera_tiny")) is None


# -- download -------------------------------------------------------------------------------


def test_download_once_into_env_cache(server, cache, payload):
    spec = make_spec(serve(server, payload), payload)
    path = models.ensure_checkpoint(spec)
    assert path == cache / "tiny_test.pt"
    assert path.read_bytes() == payload
    assert server.requests["/tiny_test.pt"] == 1
    assert models.ensure_checkpoint(spec) == path
    assert server.requests["/tiny_test.pt"] == 1
    assert models.cached_checkpoint(spec) == path
    models.verify_file(path, spec)


def test_download_without_known_hash_or_size(server, cache, payload):
    spec = make_spec(serve(server, payload), payload, size=False, sha=False)
    assert models.ensure_checkpoint(spec).read_bytes() == payload


class Progress:
    """The tqdm-like interface pooch drives."""

    def __init__(self):
        self.total, self.n, self.updates, self.closed = None, 0, 0, False

    def update(self, n):
        self.n += n
        self.updates += 1

    def reset(self):
        self.n = 0

    def close(self):
        self.closed = True


def test_progress_object_receives_updates(server, cache, payload):
    spec = make_spec(serve(server, payload), payload)
    progress = Progress()
    models.ensure_checkpoint(spec, progress=progress)
    assert progress.total == len(payload)
    assert progress.updates >= 4
    assert progress.n == len(payload)
    assert progress.closed


def test_progress_bar_on_stderr(server, tmp_path, payload, capsys):
    spec = make_spec(serve(server, payload), payload)
    path = models.ensure_checkpoint(spec, progress=True, cache=tmp_path / "elsewhere")
    assert path == tmp_path / "elsewhere" / "tiny_test.pt" and path.is_file()
    assert "100%" in capsys.readouterr().err


def test_wrong_hash_leaves_nothing(server, cache, payload):
    spec = make_spec(serve(server, payload), b"another file")
    spec = dataclasses.replace(spec, size_bytes=None)
    with pytest.raises(CheckpointError) as info:
        models.ensure_checkpoint(spec)
    message = str(info.value)
    assert_sentence(message)
    assert "checksum" in message and "discarded" in message and "try again" in message
    assert list(cache.iterdir()) == []


def test_truncated_download_leaves_nothing(server, cache, payload):
    spec = make_spec(serve(server, payload[: len(payload) // 2]), payload)
    with pytest.raises(CheckpointError) as info:
        models.ensure_checkpoint(spec)
    message = str(info.value)
    assert_sentence(message)
    assert "incomplete" in message and "discarded" in message and spec.url in message
    assert list(cache.iterdir()) == []


def test_damaged_cached_file_is_replaced(server, cache, payload):
    spec = make_spec(serve(server, payload), payload)
    cache.mkdir()
    (cache / "tiny_test.pt").write_bytes(payload[:1000])
    assert models.ensure_checkpoint(spec).read_bytes() == payload
    assert server.requests["/tiny_test.pt"] == 1


def test_damaged_cached_file_and_server_down(cache, dead_url, payload):
    spec = make_spec(dead_url, payload)
    cache.mkdir()
    damaged = cache / "tiny_test.pt"
    damaged.write_bytes(payload[:-1] + b"!")  # right size, wrong checksum
    with pytest.raises(CheckpointError) as info:
        models.ensure_checkpoint(spec)
    message = str(info.value)
    assert_sentence(message)
    assert "damaged" in message and str(damaged) in message and dead_url in message
    assert not damaged.exists()


def test_offline_with_empty_cache(cache, dead_url, payload):
    spec = make_spec(dead_url, payload)
    with pytest.raises(CheckpointError) as info:
        models.ensure_checkpoint(spec)
    message = str(info.value)
    assert_sentence(message)
    assert dead_url in message and str(cache / "tiny_test.pt") in message
    assert "connection refused" in message and "by hand" in message
    assert not (cache / "tiny_test.pt").exists()


def test_http_error(server, cache, payload):
    spec = make_spec(server.base_url + "absent.pt", payload)
    with pytest.raises(CheckpointError) as info:
        models.ensure_checkpoint(spec)
    assert_sentence(str(info.value))
    assert "HTTP 404" in str(info.value)
    assert not (cache / "absent.pt").exists()


def test_cache_folder_not_writable(tmp_path, payload):
    blocker = tmp_path / "a file"
    blocker.write_bytes(b"")
    spec = make_spec("http://127.0.0.1:9/tiny_test.pt", payload)
    with pytest.raises(CheckpointError) as info:
        models.ensure_checkpoint(spec, cache=blocker / "cache")
    assert_sentence(str(info.value))
    assert "Could not save tiny_test" in str(info.value)


def test_verify_file(tmp_path, payload):
    path = tmp_path / "tiny_test.pt"
    path.write_bytes(payload)
    models.verify_file(path, make_spec("http://127.0.0.1/tiny_test.pt", payload))
    for spec in (
        make_spec("http://127.0.0.1/tiny_test.pt", payload + b"x"),
        make_spec("http://127.0.0.1/tiny_test.pt", payload[:-1] + b"!"),
    ):
        with pytest.raises(CheckpointError) as info:
            models.verify_file(path, spec)
        assert_sentence(str(info.value))
        assert str(path) in str(info.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        models.verify_file(tmp_path / "nope.pt", spec)


# -- loading weights ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sam2_checkpoint(tmp_path_factory):
    """A SAM 2.1 tiny model with random weights and its checkpoint file (~150 MB)."""
    import torch
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    # Initialised the way sam2 itself does on import, so sam2.build_sam keeps working.
    GlobalHydra.instance().clear()
    initialize_config_module("sam2", version_base="1.2")
    cfg = compose(
        config_name="configs/sam2.1/sam2.1_hiera_t.yaml", overrides=["++model.image_size=128"]
    )
    torch.manual_seed(0)
    model = instantiate(cfg.model, _recursive_=True).eval()
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return model, path


KEY = "image_encoder.trunk.patch_embed.proj.weight"


def test_load_good_checkpoint(sam2_checkpoint):
    import torch

    model, path = sam2_checkpoint
    saved = model.state_dict()[KEY].clone()
    with torch.no_grad():
        model.state_dict()[KEY].zero_()
    models.load_checkpoint_weights(model, path, "sam2.1_hiera_tiny")
    assert torch.equal(model.state_dict()[KEY], saved)


def test_load_truncated_checkpoint(sam2_checkpoint, tmp_path):
    model, path = sam2_checkpoint
    truncated = tmp_path / "truncated.pt"
    with open(path, "rb") as src:
        truncated.write_bytes(src.read(2_000_000))
    with pytest.raises(CheckpointError) as info:
        models.load_checkpoint_weights(model, truncated, "sam2.1_hiera_tiny")
    message = str(info.value)
    assert_sentence(message)
    assert "incomplete or damaged" in message and str(truncated) in message


def test_load_missing_file(sam2_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        models.load_checkpoint_weights(sam2_checkpoint[0], tmp_path / "nope.pt", "x")


def test_load_mismatched_checkpoint(sam2_checkpoint, tmp_path):
    import torch

    model, _ = sam2_checkpoint
    state = model.state_dict()
    before = state[KEY].clone()
    keys = list(state)[:4]
    # A few weights, one of them reshaped, plus one the model lacks: kept small on purpose.
    small = {k: state[k].clone() for k in keys}
    small[KEY] = torch.zeros(1, *state[KEY].shape[1:])
    small["extra.head.weight"] = torch.zeros(3)
    mismatched = tmp_path / "mismatched.pt"
    torch.save(small, mismatched)  # a bare state dict is accepted too
    with pytest.raises(CheckpointError) as info:
        models.load_checkpoint_weights(model, mismatched, "sam2.1_hiera_tiny")
    message = str(info.value)
    assert_sentence(message)
    assert "does not fit model sam2.1_hiera_tiny" in message
    assert f"{len(state) - len(small) + 1} weights missing" in message
    assert "1 unexpected" in message and "1 with a different shape" in message
    assert "choose the config" in message
    assert torch.equal(model.state_dict()[KEY], before)


def test_synthetic_videos_get_the_bundled_model_until_an_official_one_is_cached(cache):
    assert models.model_for_synthetic_video() == models.SYNTHETIC_MODEL
    cache.mkdir()
    (cache / "sam2.1_hiera_large.pt").write_bytes(b"x")
    assert models.model_for_synthetic_video() == "sam2.1_hiera_large"
    (cache / f"{models.DEFAULT_MODEL}.pt").write_bytes(b"x")
    assert models.model_for_synthetic_video() == models.DEFAULT_MODEL
    assert models.MODELS[models.SYNTHETIC_MODEL].image_size == 320
    assert models.MODELS[models.DEFAULT_MODEL].image_size == 1024
