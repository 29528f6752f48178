"""Building SAM 2: devices, image size, Hydra manners, weights and lazy imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from napari_sam2_track.sam2_backend import (
    LoadedModel,
    ModelSetupError,
    build_model,
    check_image_size,
    resolve_device,
)


def test_auto_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto").type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    assert resolve_device("CPU").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_asking_for_a_missing_gpu_says_so(monkeypatch):
    with pytest.raises(ModelSetupError, match="sees no CUDA GPU; use cpu or auto"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ModelSetupError, match="MPS was asked for"):
        resolve_device("mps")


def test_unknown_device_and_bad_image_size_are_refused():
    with pytest.raises(ModelSetupError, match="'tpu' is not a device"):
        resolve_device("tpu")
    for size in (100, 32, 1000):
        with pytest.raises(ModelSetupError, match="multiple of 32"):
            check_image_size(size)
    check_image_size(256)


def test_bfloat16_autocast_on_cuda_only():
    from napari_sam2_track.sam2_backend.compat import autocast_for

    with LoadedModel(None, "m", torch.device("cpu"), 128, None).calls():
        assert not torch.is_autocast_enabled("cpu")
    assert not isinstance(autocast_for(torch.device("cpu")), torch.autocast)
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else _nothing():
        cuda = autocast_for(torch.device("cuda"))
    assert isinstance(cuda, torch.autocast)
    assert cuda.fast_dtype == torch.bfloat16


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_predictor_is_built_for_corrections_at_the_asked_image_size():
    model = build_model(image_size=128, random_weights=True, device="cpu")
    predictor = model.predictor
    assert predictor.image_size == model.image_size == 128
    assert predictor.add_all_frames_to_correct_as_cond
    assert type(predictor).__name__ == "SAM2VideoPredictor"
    assert not predictor.training
    # SAM 2's fallback to its three candidate masks when the single one is unstable.
    assert predictor.sam_mask_decoder.dynamic_multimask_via_stability


def test_a_single_mask_model_keeps_to_its_one_mask():
    """The bundled model never learned the three candidates SAM 2 would fall back on."""
    predictor = build_model("mini-synthetic", device="cpu").predictor
    assert not predictor.multimask_output_in_sam
    assert not predictor.sam_mask_decoder.dynamic_multimask_via_stability


def test_a_model_with_spatial_memory_alone_tracks():
    """The bundled model predicts object scores but keeps no object pointers, a
    combination sam2 1.1 fails on when it first tracks a frame (``no_obj_ptr``)."""
    from napari_sam2_track.engine import TrackingSession
    from napari_sam2_track.synthetic import make_synthetic_video

    model = build_model("mini-synthetic", device="cpu")
    predictor = model.predictor
    assert predictor.pred_obj_scores and not predictor.use_obj_ptrs_in_encoder
    assert "no_obj_ptr" not in predictor.state_dict()  # nothing to save or load
    session = TrackingSession(make_synthetic_video(4, 64, 80, n_objects=1).frames, model)
    session.set_prompt(0, 1, points=[(30, 30)], labels=[1])
    assert [frame for frame, _ in session.propagate()] == [0, 1, 2, 3]
    # Only mask memories are kept: of the recent frames SAM 2 reads, not 16 for pointers.
    assert session.memory_window == predictor.num_maskmem


def test_local_checkpoint_file_loads_into_the_model(tmp_path):
    torch.manual_seed(1)
    source = build_model(image_size=128, random_weights=True, device="cpu").predictor
    path = tmp_path / "mine.pt"
    torch.save({"model": source.state_dict()}, path)
    loaded = build_model(checkpoint=path, image_size=128, device="cpu")
    assert loaded.checkpoint == path
    name, weight = next(iter(source.state_dict().items()))
    torch.testing.assert_close(loaded.predictor.state_dict()[name], weight)


def _run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_host_hydra_keeps_its_own_config(tmp_path):
    (tmp_path / "host.yaml").write_text("answer: 42\n")
    out = _run_python(f"""
        from hydra import compose, initialize_config_dir
        initialize_config_dir(config_dir={str(tmp_path)!r}, version_base="1.2")
        from napari_sam2_track.sam2_backend import build_model
        build_model(image_size=128, random_weights=True, device="cpu")
        print(compose(config_name="host").answer)
    """)
    assert out.strip() == "42"


def test_hydra_is_left_uninitialised_for_a_host_that_comes_later(tmp_path):
    (tmp_path / "host.yaml").write_text("answer: 7\n")
    out = _run_python(f"""
        from napari_sam2_track.sam2_backend import build_model
        build_model(image_size=128, random_weights=True, device="cpu")
        from hydra import compose, initialize_config_dir
        initialize_config_dir(config_dir={str(tmp_path)!r}, version_base="1.2")
        print(compose(config_name="host").answer)
    """)
    assert out.strip() == "7"


def test_importing_the_plugin_does_not_import_torch_or_sam2():
    out = _run_python("""
        import sys
        import napari_sam2_track, napari_sam2_track._reader, napari_sam2_track._widget
        import napari_sam2_track.engine, napari_sam2_track.sam2_backend, napari_sam2_track.models
        print(sorted(m for m in ("torch", "sam2") if m in sys.modules))
    """)
    assert out.strip() == "[]"
