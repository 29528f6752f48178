"""tools/train_mini_sam2.py: the bundled model's training is reproducible from a seed."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_sam2_track.sam2_backend import ModelSetupError

TOOLS = Path(__file__).resolve().parents[1] / "tools"
SCRIPT = TOOLS / "train_mini_sam2.py"


def load_tool(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trainer():
    module = load_tool(SCRIPT)
    # train() sets process-wide torch settings, as a script may; put them back after.
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield module
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def short_run(trainer, seed: int) -> dict[str, torch.Tensor]:
    """Four steps that take every path: several objects per clip, shapes that change,
    look-alike objects, crowded ones, corrections on later frames (their loss reaching the
    prediction they correct, the frames after them reading no memory from before them,
    some of masks that drifted onto a neighbour, weighted above a tracked frame), fixes
    after a drift."""
    options = "--image-size 128 --steps 4 --batch 2 --frames 3 --targets 2 --shape-changes"
    options += " --p-correct 1 --prev-grad --fix-supersedes-memory --p-crowded 0.5 --p-merged 1"
    options += " --drift-frames 2 --drift-share 0.5 --p-twins 1 --p-twins-end 0"
    options += " --correction-weight 3"
    return trainer.train(trainer.parse_args([*options.split(), "--seed", str(seed)]))


def test_training_is_reproducible_from_its_seed(trainer):
    torch.manual_seed(0)  # as train() seeds itself before building the model
    initial = trainer.build_training_model().state_dict()
    first, again, other = short_run(trainer, 0), short_run(trainer, 0), short_run(trainer, 1)
    assert first.keys() == initial.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    # Training moved the weights the engine relies on: image encoder, memory, mask decoder.
    for part in ("image_encoder.", "memory_attention.", "memory_encoder.", "sam_mask_decoder."):
        names = [k for k in first if k.startswith(part) and first[k].is_floating_point()]
        assert any(not torch.equal(first[k], initial[k]) for k in names), part


@pytest.mark.parametrize("prev_grad", [False, True])
def test_a_correction_can_train_the_prediction_it_is_fed(trainer, prev_grad):
    """As in SAM 2's training, with --prev-grad a correction's loss flows back through the
    previous logits it is fed into the prediction that made them."""
    torch.manual_seed(0)
    model = trainer.build_training_model(128)
    # The bundled weights: random ones mostly see no object, and give constant logits.
    bundled = trainer.MINI_DIR / f"{trainer.CONFIG_NAME}.pt"
    model.load_state_dict(torch.load(bundled, map_location="cpu")["model"])
    rng = np.random.default_rng(0)
    clip = trainer.sample_clips(rng, 0, 1, 128, trainer.parse_args(["--batch", "1"]), 0.0)
    batch = trainer.Batch(model, clip, 1, prev_grad)
    batch.encode()
    clicks = [[(*trainer.interior_click(gt[0], rng), 1)] for gt in batch.gts]
    out, *_ = batch.step(0, True, trainer._points(clicks, batch.sizes, 128))
    out["pred_masks"].retain_grad()
    _, loss, _ = batch.correct(out, clicks, 0, True, rng)
    loss.backward()
    assert len(clicks[0]) == 2  # the first click and the correction
    gradient = out["pred_masks"].grad
    assert (gradient is not None and bool(gradient.abs().sum() > 0)) is prev_grad


@pytest.mark.parametrize("weight", [1.0, 3.0])
def test_a_corrected_frame_weighs_in_the_loss_as_the_option_says(trainer, monkeypatch, weight):
    """With --correction-weight W a corrected frame's loss counts W times a tracked
    frame's in the step's loss."""
    corrections = []
    original = trainer.Batch.correct
    monkeypatch.setattr(
        trainer.Batch, "correct", lambda *a, **k: corrections.append(1) or original(*a, **k)
    )
    # Every frame's own loss 1: the step's loss is then the corrections' weighted share.
    monkeypatch.setattr(trainer, "frame_loss", lambda multi, *_: (multi.sum() * 0 + 1, 1.0))
    torch.manual_seed(0)
    model = trainer.build_training_model(128)
    options = "--image-size 128 --batch 1 --targets 1 --frames 3 --p-correct 1"
    args = trainer.parse_args([*options.split(), "--correction-weight", str(weight)])
    loss, *_ = trainer.train_step(model, np.random.default_rng(0), 0, args, 0.0)
    n = len(corrections)
    assert n >= 1  # the later frame's, and at times the first frame's
    assert float(loss.detach()) == pytest.approx((args.frames + weight * n) / (args.frames + n))


@pytest.mark.parametrize("instead", [False, True])
def test_a_correction_can_be_of_a_mask_that_drifted_onto_a_neighbour(
    trainer, monkeypatch, instead
):
    """With --p-merged some corrections are fed a mask that took in the nearest other
    object of the clip (or went over to it), and click on that mask's error."""
    torch.manual_seed(0)
    model = trainer.build_training_model(128)
    bundled = trainer.MINI_DIR / f"{trainer.CONFIG_NAME}.pt"
    model.load_state_dict(torch.load(bundled, map_location="cpu")["model"])
    args = trainer.parse_args(["--batch", "1", "--targets", "3"])
    for seed in range(50):  # a clip with three objects in view
        rng = np.random.default_rng(seed)
        batch = trainer.Batch(model, trainer.sample_clips(rng, seed, 1, 128, args, 0.0), 1)
        if batch.size == 3 and all(gt[0].sum() > 60 for gt in batch.gts):
            break
    centres = [np.argwhere(gt[0]).mean(0) for gt in batch.gts]
    nearest = 1 + int(np.argmin([np.hypot(*(centres[o] - centres[0])) for o in (1, 2)]))
    assert batch.drifts(0, rng, 0.0) == {}
    assert batch.drifts(0, rng, 1.0)[0][0] == nearest

    batch.encode()
    clicks = [[(*trainer.interior_click(gt[0], rng), 1)] for gt in batch.gts]
    with torch.no_grad():
        out, *_ = batch.step(0, True, trainer._points(clicks, batch.sizes, 128))
        fed = []
        step = batch.step
        monkeypatch.setattr(batch, "step", lambda *a: fed.append(a[3]) or step(*a))
        batch.correct(out, clicks, 0, True, rng, {0: (nearest, instead)})
    # Fed clamped to SAM 2's +-32, as its predictor feeds previous logits.
    prev, logits = fed[0], out["pred_masks"].clamp(-32, 32)
    grid = torch.nn.functional.interpolate(
        batch.targets[:, 0, None], size=prev.shape[-2:], mode="area"
    )[:, 0]
    inside_other, inside_own = grid[nearest] == 1, (grid[0] == 1) & (grid[nearest] == 0)
    assert bool((prev[0][0][inside_other] >= 10).all())
    expected_own = torch.full_like(logits[0, 0], -10.0) if instead else logits[0, 0]
    assert torch.equal(prev[0, 0][inside_own], expected_own[inside_own])
    assert torch.equal(prev[1:], logits[1:])  # the others' corrections are as they were
    x, y, label = clicks[0][-1]
    own, other = batch.gts[0][0], batch.gts[nearest][0]
    drifted = other | (trainer._video_res(out["pred_masks_high_res"], batch.sizes)[0] & ~instead)
    assert drifted[int(y), int(x)] != label and own[int(y), int(x)] == label


@pytest.mark.parametrize("drift", [False, True])
@pytest.mark.parametrize("supersede", [False, True])
def test_frames_after_a_fix_read_the_memory_the_engine_gives_them(
    trainer, monkeypatch, drift, supersede
):
    """With --fix-supersedes-memory the frames tracked after a later-frame correction
    hold no memory of the tracked frames before it, as in the engine."""
    held = []  # (frame, was it clicked, tracked frames whose memory it could read)
    original = trainer._step

    def spy(model, t, is_init, feats, pos, sizes, points, prev, output_dict, n_frames):
        held.append((t, points is not None, sorted(output_dict["non_cond_frame_outputs"])))
        return original(model, t, is_init, feats, pos, sizes, points, prev, output_dict, n_frames)

    monkeypatch.setattr(trainer, "_step", spy)
    torch.manual_seed(0)
    model = trainer.build_training_model(128)
    options = "--batch 1 --targets 1 --frames 4 --p-correct 1 --drift-frames 3"
    args = trainer.parse_args([*options.split()] + ["--fix-supersedes-memory"] * supersede)
    step = trainer.drift_correction_step if drift else trainer.train_step
    for seed in range(20):  # a fix with tracked frames before it and frames after it
        held.clear()
        step(model, np.random.default_rng(seed), 0, args, 0.0)
        last_click = max(i for i, (t, clicked, _) in enumerate(held) if clicked and t > 0)
        fix = held[last_click][0]
        if fix >= 2 and last_click < len(held) - 1:
            break
    after = [frames for _, _, frames in held[last_click + 1 :]]
    before_fix = [[f for f in frames if f < fix] for frames in after]
    assert all(not frames for frames in before_fix) is supersede, (fix, held)


@pytest.mark.parametrize("crowded", [0, 1])
def test_single_frame_training_leaves_the_memory_alone(trainer, crowded):
    """The first and last stages of the recipe: clicks on single frames, as SAM 2 trains
    on images (in the last, half of them on crowded look-alike shapes)."""
    torch.manual_seed(0)
    initial = trainer.build_training_model().state_dict()
    options = "--image-size 128 --steps 2 --batch 2 --frames 1 --targets 2 --p-correct 0"
    options += f" --encoder-lr 1e-4 --weight-decay 0.1 --p-crowded {crowded}"
    trained = trainer.train(trainer.parse_args(options.split()))
    moved = {k.split(".")[0] for k in trained if not torch.equal(trained[k], initial[k])}
    assert {"image_encoder", "sam_mask_decoder", "sam_prompt_encoder"} <= moved
    assert not moved & {"memory_attention", "memory_encoder", "obj_ptr_proj"}


def test_drift_corrections_can_train_the_memory_alone(trainer):
    """With --drift-memory-only, fixes after a drift teach the memory to take a later
    click, and leave what a clicked frame without memory (the preview) reads as it was."""
    torch.manual_seed(0)
    initial = trainer.build_training_model().state_dict()
    options = "--image-size 128 --steps 2 --batch 1 --frames 2 --targets 2 --drift-frames 2"
    options += " --drift-share 1 --drift-memory-only --weight-decay 0.1"
    trained = trainer.train(trainer.parse_args(options.split()))
    moved = {k for k in trained if not torch.equal(trained[k], initial[k])}
    assert moved and all(k.startswith(trainer.MEMORY_MODULES) for k in moved), moved
    assert {k.split(".")[0] for k in moved} >= {"memory_attention", "memory_encoder"}


def test_share_of_look_alike_clips_moves_from_start_to_end(trainer):
    steady = trainer.parse_args(["--steps", "5", "--p-twins", "0.3"])
    assert [trainer.twins_share(steady, step) for step in range(5)] == [0.3] * 5
    falling = trainer.parse_args(["--steps", "5", "--p-twins", "0.5", "--p-twins-end", "0.1"])
    shares = [trainer.twins_share(falling, step) for step in range(5)]
    assert shares == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.1])


def test_weights_carry_from_one_image_size_to_another(trainer):
    """The recipe's first stages train at 128 pixels, where a step is cheaper, and the
    last go on at the config's 320 with the same weights."""
    small, large = trainer.build_training_model(128), trainer.build_training_model()
    assert (small.image_size, large.image_size) == (128, 320)
    large.load_state_dict(small.state_dict())  # strict: every weight fits both sizes
    assert all(torch.equal(v, large.state_dict()[k]) for k, v in small.state_dict().items())
    # A clip trains at the smaller size: its second frame reads the first's memory on an
    # 8x8 grid, where the config lays rotary positions out for 20x20 (sam2 lays them out
    # anew).
    options = "--image-size 128 --steps 1 --batch 1 --frames 2 --targets 1 --p-correct 0"
    trained = trainer.train(trainer.parse_args(options.split()))
    assert trained.keys() == small.state_dict().keys()
    with pytest.raises(ModelSetupError, match="must be a multiple of 32"):
        trainer.build_training_model(100)


def test_a_checkpoint_records_how_it_was_made(trainer, tmp_path, monkeypatch):
    """Weights repeat only on the same kind of CPU with the same libraries, so each
    checkpoint says what made it; the engine's loader reads it as plain weights still."""
    from napari_sam2_track.models import load_checkpoint_weights

    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("MKL_CBWR", "AVX2")  # recorded as set (here too late to act on)
    options = ["--image-size", "128", "--steps", "1", "--batch", "1", "--frames", "1"]
    trainer.main([*options, "--out", str(first)])
    trainer.main([*options, "--init", str(first), "--seed", "4", "--out", str(second)])

    made_by = torch.load(second, map_location="cpu", weights_only=True)["made_by"]
    assert made_by["command"].startswith("python tools/train_mini_sam2.py --image-size 128")
    assert f"--init {first} --seed 4 --out {second}" in made_by["command"]
    assert made_by["init_sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert made_by["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert made_by["threads"] == 2 and made_by["cpu"]
    assert made_by["environment"]["MKL_CBWR"] == "AVX2"
    assert "ONEDNN_MAX_CPU_ISA" not in made_by["environment"]
    assert made_by["versions"]["torch"] == torch.__version__
    assert made_by["versions"]["numpy"] == np.__version__
    assert torch.load(first, weights_only=True)["made_by"]["init_sha256"] is None
    model = trainer.build_training_model(128)
    load_checkpoint_weights(model, second, "mini-synthetic")
    assert not list(tmp_path.glob("*.partial"))

    # The evaluation says what it measured, and how that was made where the file says.
    evaluation = load_tool(TOOLS / "eval_mini_sam2.py")
    described = evaluation.describe_weights("mini-synthetic", second)
    assert described[:2] == [f"weights: {second}", f"  made by: {made_by['command']}"]
    assert "MKL_CBWR=AVX2" in described[2] and f"torch {torch.__version__}" in described[3]
    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    assert evaluation.describe_weights("mini-synthetic", plain) == [
        f"weights: {plain} (no record of how they were made)"
    ]


def test_kernels_are_capped_on_x86_unless_chosen_otherwise(trainer):
    """On x86-64 ``--portable-kernels`` caps each library's kernels at AVX2, for a run to
    give the same weights on CPUs with AVX-512 and without; a choice the caller made
    stands."""
    assert trainer.portable_kernel_settings({}, "x86_64") == trainer.PORTABLE_KERNELS
    assert trainer.portable_kernel_settings({"PATH": "/bin"}, "AMD64") == trainer.PORTABLE_KERNELS
    assert trainer.portable_kernel_settings({}, "arm64") == {}
    chosen = {"ATEN_CPU_CAPABILITY": "default", "DNNL_MAX_CPU_ISA": "AVX512_CORE"}
    assert trainer.portable_kernel_settings(chosen, "x86_64") == {"MKL_CBWR": "AVX2"}


def test_the_script_runs_with_the_kernels_capped(trainer, tmp_path, monkeypatch, capsys):
    """Each library reads its setting when it first computes, which importing sam2 may
    already do, so the script starts itself anew with them: torch then runs AVX2 code.
    Called in a process that has computed already, it says it cannot cap them."""
    if not trainer.portable_kernel_settings({}, platform.machine()):
        pytest.skip("kernels are capped on x86-64 only")
    out = tmp_path / "capped.pt"
    options = [
        "--image-size",
        "128",
        "--steps",
        "1",
        "--batch",
        "1",
        "--frames",
        "1",
        "--portable-kernels",
    ]
    for name in trainer.KERNEL_CHOICE:  # for the script as for the process it starts
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit):
        trainer.parse_args(options)
    assert "only where the script runs as a command" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # what the script would not see before parsing
        trainer.parse_args(["--portable"])
    assert "unrecognized arguments: --portable" in capsys.readouterr().err
    subprocess.run(
        [sys.executable, str(SCRIPT), *options, "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    made_by = torch.load(out, weights_only=True)["made_by"]
    assert made_by["cpu_capability"] == "AVX2"
    assert made_by["environment"] == trainer.PORTABLE_KERNELS
    assert made_by["command"] == shlex.join(
        ["python", "tools/train_mini_sam2.py", *options, "--out", str(out)]
    )


def test_the_log_fingerprints_the_weights(trainer, capsys):
    """Two runs' logs show where their weights part: each line ends in a digest of the
    weights at that step, to the last bit."""
    options = "--image-size 128 --steps 2 --batch 1 --frames 1 --log-every 1"
    state = trainer.train(trainer.parse_args(options.split()))
    lines = capsys.readouterr().out.splitlines()
    printed = [line.split("weights ")[1].split()[0] for line in lines]
    assert len(printed) == 2 and printed[0] != printed[1]
    assert printed[-1] == trainer.fingerprint(state)
    nudged = dict(state)
    name = next(k for k, v in state.items() if v.is_floating_point())
    nudged[name] = torch.nextafter(state[name], torch.full_like(state[name], math.inf))
    assert trainer.fingerprint(nudged) != printed[-1]
