"""Train the miniature SAM 2 that ships as the ``mini-synthetic`` model.

The model is SAM 2 itself (``sam2.modeling.sam2_base.SAM2Base``, built through Hydra from
``src/napari_sam2_track/mini/mini_synthetic.yaml``), scaled down to 320-pixel frames,
tracking with spatial memory alone (no object pointers: see the config), and trained
from scratch on the synthetic videos of :mod:`napari_sam2_track.synthetic`:
textured shapes over a textured background that move, occlude each other, and (in some
clips) swell, shrink and stretch, or leave the frame and come back.

Training follows SAM 2's recipe in miniature. Each step takes a batch of short clips
and up to ``--targets`` objects of each, tracked together and sharing the image features,
so only the click tells one from another. The first frame is a conditioning frame
prompted with a click inside the object (sometimes followed by corrective clicks on the
error of the previous prediction, fed together with that prediction's logits); the
other frames are tracked with SAM 2's own ``track_step`` and memory bank, and with some
probability one later frame gets a corrective click after it was tracked, as a person
fixing a drift would. The loss is SAM 2's: focal (x20) + dice on the mask (the best one
where the model gives several), L1 on the predicted IoU, and binary cross-entropy on the
object score. ``--shape-changes`` adds clips whose shapes deform or leave the frame and
come back. As in SAM 2's own training, the image encoder learns more slowly than the
rest (``--encoder-lr``) and weights decay by 0.1: left to grow, the image features come
to drown out the prompt tokens in the mask decoder, and the model learns to segment
whatever stands out whatever the click says.

Some options practise what short clips of distinct shapes never ask for.
``--drift-frames N`` makes a share (``--drift-share``) of steps drift corrections: the
object is clicked on the first frame and tracked for N frames without gradient, then the
frame where the masks went worst gets a corrective click and the loss falls on it and
the ``--frames`` after it, whose memory holds a stale first frame and stale tracked
frames beside the fix, as on a long video. With ``--drift-memory-only`` those steps
train only the memory encoder and memory attention, which a frame clicked without memory
(the preview) never runs through: what the preview reads learns from the other steps
alone. The recipe has none: a quarter of the capped third run's steps drifting over 8
frames gave 0.74 behind occluders against 0.77, and a click gain of +0.02 against +0.05.
``--p-twins`` adds clips whose objects all look alike, so that only the memory of
where each one was tells them apart; in clips of distinct shapes a model with object
pointers in its config can track by looks alone, through them, and learn to ignore both
its spatial memory and a later fix (the reason the shipped config has none).
``--p-twins-end`` moves that share linearly to another by the last step: a model that
starts on many look-alike clips learns to read its spatial memory before its object
pointers come to drown it out (once they do, no gradient reaches the spatial memory),
and fewer look-alikes later let it use looks as well. ``--p-crowded`` adds clips whose
shapes start touching or overlapping in colours close to one another, where a small model
otherwise learns to mask whatever shares the clicked shape's colour. ``--max-scale``
makes half the videos up to that much larger (the sample video is 360x480).
``--prev-grad`` lets a correction's loss flow back through the previous logits it is fed
into the prediction that made them, as SAM 2's own training does (without it they are fed
detached); the recipe leaves it out, as it moved no figure of the evaluation beyond the
spread between training seeds.
``--fix-supersedes-memory`` trains the frames after a later-frame correction as the
engine tracks them: reading the prompted frames and what was tracked since, not the
drifted frames before the fix. The recipe leaves it out: in stage 3 it made a correction
carry further but lost more objects behind occluders before any correction; from the
capped second run it lost both (0.75 behind occluders against 0.77, the click's gain
+0.03 against +0.05).
``--p-merged`` makes a share of the corrections on later frames corrections of the way
masks go wrong in use: the prediction is made to have drifted onto the nearest other
object of the clip, taking it in beside its own (two times in three) or in its place,
and the click falls on that error, as a person's does on a tracked frame gone wrong. In
short clips of a model that tracks well the corrections are mostly of thin slivers at
an edge, and rarely a click inside a whole neighbour taken in. The recipe leaves it out:
over two training seeds and three sets of held-out videos it left the gain of a
corrective click where it was on average (up with one seed, down with the other).
``--correction-weight`` counts a corrected frame's loss that many times a tracked frame's.
In a six-frame clip with one correction, the correction is one loss in seven, and a
model trained so learns to track well and to heed a click against the previous mask's
logits poorly: a lone negative click in the middle of a neighbour that the mask took in
often left the mask as it was. The recipe's last two stages weigh corrections three
times. With the seeds of the weights shipped before (below), on three sets of held-out
videos, the frames after a corrective click come out 0.03 to 0.06 higher in mean J (over
the objects each model loses), the click's gain is +0.14 to +0.16 where it was +0.08 to
+0.11, and objects behind occluders lose 0.01 to 0.015 before any correction. With stage
3's seed 3 the gain is +0.08, +0.17 and +0.11 (where it was +0.03 and +0.14 on the two
sets tried without the weight), for 0.002 at most behind occluders: the weight raises
the gain with both seeds, and the gain spreads as much between training seeds as between
sets of videos.
``--p-correct`` is the share of clips with a corrective click on a later frame; the
recipe's third run keeps half. With every clip corrected there, the click's gain (on
the default held-out videos) went from +0.09 to +0.18 from one rerun's second-run
weights, but from +0.16 to +0.09 from those shipped before and from +0.05 to +0.02 from
the capped second run's (the shipped model's), so it depends on the weights the run
starts from more than on this.
``--image-size`` trains at another frame size than the config's: the weights fit every
size (only the image and memory grids change), so a stage can go on at a larger size
from weights trained at a smaller, cheaper one.

Frames are normalised exactly as the tracking engine does (``model_input.ModelFrames``).
Everything is seeded, and a run gives the same weights to the last bit where the CPU's
vector instructions, the thread count and the library versions are the same. Elsewhere
floats are summed in another order and the weights part at once: torch's own kernels,
oneDNN's and MKL's each pick their code by the CPU's instructions, and here a run under
any one of ``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2`` or ``MKL_CBWR=AVX2``
parts from the default AVX-512 one at its first step (with all three, runs repeat, no
slower). ``--portable-kernels`` sets all three on x86-64, for a run not to depend on
whether the CPU has AVX-512 (untried on a second kind of CPU). Each checkpoint records
what decides this under ``made_by`` (the CPU, the instructions torch picked, those
settings, threads, versions), with the command that made it and the SHA-256 of the
weights it started from, and each log line ends in a digest of the weights, so two
runs' logs show the step where they part.

The shipped checkpoint comes from four runs on 2 CPU cores (no GPU), about 43 minutes in
all, each with the kernels capped, so that the commands below give it again from scratch.
Single frames first, as SAM 2 trains on images, to learn what a click means (about 13
minutes; half the videos larger, as the sample video is); then six-frame clips, to learn
to track (about 14 minutes); both at 128 pixels, where a step costs a quarter of one at
320. Then a short run of the same clips at the model's 320 pixels, which it sees at 2.5
times the detail, some of them crowded with look-alike shapes (about 11 minutes). Last,
single frames again at 320 pixels, half of them crowded (about 5 minutes), where a
click's mask learns to stop at the faint edge between two similar shapes at the detail
the model sees them in use. Both of these last runs weigh a corrected frame's loss three
times a tracked frame's. The model works at 320 pixels rather than 256, as its masks
find such edges better in more detail: in the same training time, previews, single
objects, shapes that deform and the sample's shapes all came out better on three sets of
held-out videos, for a little less (0.005) on objects behind occluders, and the gain of
a corrective click stayed within the spread between training seeds:

    python tools/train_mini_sam2.py --portable-kernels --image-size 128 --frames 1 \
        --batch 8 --targets 4 --steps 6000 --max-scale 2.5 --lr 1e-3 --encoder-lr 1e-4 \
        --weight-decay 0.1 --p-correct 0 --out stage1.pt
    python tools/train_mini_sam2.py --portable-kernels --image-size 128 --init stage1.pt \
        --frames 6 --batch 4 --targets 3 --shape-changes --steps 2000 --lr 1e-3 \
        --encoder-lr 1e-4 --weight-decay 0.1 --seed 1 --out stage2.pt
    python tools/train_mini_sam2.py --portable-kernels --init stage2.pt --frames 6 \
        --batch 4 --targets 3 --shape-changes --p-crowded 0.3 --steps 300 --lr 3e-4 \
        --encoder-lr 3e-5 --weight-decay 0.1 --correction-weight 3 --seed 2 --out stage3.pt
    python tools/train_mini_sam2.py --portable-kernels --init stage3.pt --frames 1 \
        --batch 8 --targets 4 --steps 600 --max-scale 2.5 --p-crowded 0.5 --lr 3e-4 \
        --encoder-lr 3e-5 --weight-decay 0.1 --p-correct 0 --correction-weight 3 --seed 5 \
        --out src/napari_sam2_track/mini/mini_synthetic.pt

Run on two fresh machines of one kind (an x86-64 CPU, 2 threads, torch 2.14.1, sam2
1.1.0), the four commands gave every figure of the evaluation the same to the third
decimal; the last steps' digests are bc181eb081bc, 51d4d1dcf03b, 26ade77b0f4f and
9b81ad3da813, for a later run to compare its logs against. The shipped checkpoint's
``made_by`` names the temporary folder it was trained in.

Runs that part end apart, and the spread is wide, mostly in the second run: its mean J
behind occluders at 128 pixels is 0.70 with seed 1 (capped), 0.73 and 0.72 with seeds 2
and 3, and 0.74 to 0.76 uncapped. The weights shipped before these (in the repository's
history) came from a second run at 0.83 that no run here has come near, made before
checkpoints recorded how, on another machine or with other library versions. The last
two runs made of it a model at 0.88 behind occluders whose corrective click gains +0.16,
and of the uncapped 0.76 one a model at 0.79 whose click gains +0.09; of the capped one
they make the shipped model, at 0.77 and +0.05, a little weaker too on single objects
(0.92 against the old 0.97, both above the 0.85 target) and on the sample (0.91 against
0.94). Its click gains more (+0.07) where tracking past it reads the frames before it as
well, as SAM 2 does by default (the evaluation's ``--read-memory-behind-prompts``). A
capped second run of 3,000 steps rather than 2,000 (50 minutes in all) reaches 0.76 at
128 pixels, and the last two runs make of it a model at 0.79 behind occluders whose
click gains +0.04: more clip steps lift tracking, not the click. The synthetic videos
are the same with numpy 2.3 and 2.4.

``python tools/eval_mini_sam2.py`` measures it.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import platform
import random
import shlex
import sys
import time
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pooch import file_hash

from napari_sam2_track.model_input import ModelFrames
from napari_sam2_track.models import BUNDLED_DIR
from napari_sam2_track.synthetic import make_synthetic_video

from synthetic_eval import border_distance, deepest_point

MINI_DIR = BUNDLED_DIR
CONFIG_NAME = "mini_synthetic"
# Training videos use generator seeds from here on; evaluation and tests use seeds below.
TRAIN_SEED_BASE = 1_000_000
# What reads and writes SAM 2's memory, and nothing that a frame without memory uses.
MEMORY_MODULES = (
    "memory_encoder.",
    "memory_attention.",
    "maskmem_tpos_enc",
    "no_obj_embed_spatial",
)


def build_training_model(image_size: int | None = None) -> torch.nn.Module:
    """SAM2Base from the bundled config, composed as the engine composes it, at
    ``image_size`` when given (the weights fit every size: only the grids change)."""
    from omegaconf import OmegaConf

    from napari_sam2_track.sam2_backend.build import (
        check_image_size,
        compose_sam2_config,
        instantiate_sam2,
    )

    check_image_size(image_size)
    overrides = [] if image_size is None else [f"++model.image_size={image_size}"]
    config = compose_sam2_config(f"{CONFIG_NAME}.yaml", overrides, MINI_DIR)
    OmegaConf.resolve(config)
    return instantiate_sam2(config.model)


# ----------------------------------------------------------------------------- clicks


def interior_click(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A click inside ``mask`` (x, y): mostly well inside, as a person clicks."""
    ys, xs = np.nonzero(mask)
    if rng.random() < 0.7:
        depth = border_distance(mask)
        keep = depth[ys, xs] >= 0.5 * depth.max()
        ys, xs = ys[keep], xs[keep]
    i = rng.integers(len(ys))
    return float(xs[i]), float(ys[i])


def corrective_click(
    gt: np.ndarray, pred: np.ndarray, rng: np.random.Generator
) -> tuple[float, float, int] | None:
    """A click on the prediction's error: positive on a miss, negative on a false hit.

    The error type is drawn by area, and the point is either the middle of that error
    (where evaluation clicks: ``synthetic_eval.correction_click``) or a uniform pick inside it.
    """
    missed, extra = gt & ~pred, pred & ~gt
    n_missed, n_extra = int(missed.sum()), int(extra.sum())
    if n_missed + n_extra == 0:
        return None
    positive = rng.random() < n_missed / (n_missed + n_extra)
    error = missed if positive else extra
    if rng.random() < 0.5:
        x, y = deepest_point(error)
    else:
        ys, xs = np.nonzero(error)
        i = rng.integers(len(ys))
        x, y = float(xs[i]), float(ys[i])
    return x, y, int(positive)


# ------------------------------------------------------------------------------- data


def sample_clip(
    rng: np.random.Generator,
    index: int,
    n_frames: int,
    image_size: int,
    max_targets: int = 1,
    shape_changes: bool = False,
    max_scale: float = 1.0,
    p_twins: float = 0.0,
    p_crowded: float = 0.0,
):
    """One training clip: normalised frames, the video's size, and up to ``max_targets``
    objects to track, each as its masks at the video's and at the model's resolution.

    Several objects of one clip can be tracked together, as SAM 2 trains: they share the
    image features, and only the click tells one from the other. With ``shape_changes``
    some clips have shapes that deform, or that leave the frame and come back. With
    ``max_scale`` > 1 half the clips are up to that much larger (the sample video is
    360x480): the generator's textures keep their size in pixels, so a larger video
    looks finer once brought down to the model's frame size. A share ``p_twins`` of clips
    have objects that look all alike, so only memory of where each one was tells them
    apart: without them a model can track by looks alone and learn to ignore its memory
    of where the object was, and with it a correction on a later frame. A share
    ``p_crowded`` of clips start with their shapes touching or overlapping, in colours
    close to one another: the clicked shape must stop at a faint edge, not run on into
    its neighbours.
    """
    while True:
        height = int(rng.integers(96, 193) // 8 * 8)
        width = int(rng.integers(96, 225) // 8 * 8)
        if max_scale > 1 and rng.random() < 0.5:  # drawn only then, as below
            scale = rng.uniform(1.0, max_scale)
            height, width = int(height * scale) // 8 * 8, int(width * scale) // 8 * 8
        n_objects = int(rng.integers(1, 5))
        stride = int(rng.choice([1, 1, 2]))
        deform, leave = 0.0, False
        if shape_changes:  # drawn only then, so runs without them stay as they were
            deform = float(rng.choice([0.0, 0.0, 0.15, 0.3]))
            leave = bool(rng.random() < 0.3)  # objects cross the borders, not bounce
        twins = p_twins > 0 and bool(rng.random() < p_twins)  # drawn only then
        crowd = p_crowded > 0 and bool(rng.random() < p_crowded)  # likewise
        video = make_synthetic_video(
            twins=twins,
            crowd=crowd,
            n_frames=n_frames * stride,
            height=height,
            width=width,
            n_objects=n_objects,
            seed=TRAIN_SEED_BASE + index,
            deform=deform,
            leave=leave,
        )
        frames = video.frames[::stride]
        labels = video.labels[::stride]
        visible = [(labels[0] == i + 1).sum() for i in range(n_objects)]
        candidates = [i for i, area in enumerate(visible) if area >= 30]
        if candidates:
            break
        index += 7_919  # a different video; keeps the sequence reproducible
    model_frames = ModelFrames(frames, image_size)
    images = torch.stack([model_frames[t] for t in range(n_frames)])
    if max_targets == 1:  # a single draw, as the shipped model's runs were sampled
        chosen = [int(rng.choice(candidates))]
    else:
        chosen = rng.permutation(candidates)[:max_targets]
    targets = []
    for i in chosen:
        gt = labels == i + 1
        gt_small = F.interpolate(
            torch.from_numpy(gt).float()[:, None],
            size=(image_size, image_size),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )[:, 0]
        targets.append((gt, (gt_small > 0.5).float()))
    return images, (height, width), targets


# ------------------------------------------------------------------------------- loss


def focal_loss(logits, target, alpha=0.25, gamma=2.0):
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * loss).flatten(2).mean(-1)


def dice_loss(logits, target):
    prob = logits.sigmoid().flatten(2)
    target = target.flatten(2)
    numerator = 2 * (prob * target).sum(-1)
    denominator = prob.sum(-1) + target.sum(-1)
    return 1 - (numerator + 1) / (denominator + 1)


def mask_ious(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """IoU of boolean masks over their last two dimensions; 1 where both are empty, as
    ``synthetic_eval.mask_iou`` counts an absent object rightly left unmasked."""
    inter = (pred & truth).flatten(-2).sum(-1).float()
    union = (pred | truth).flatten(-2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def frame_loss(multimasks, ious, object_score_logits, target):
    """SAM 2's multistep loss for one frame: (B, M, S, S) logits, (B, M) IoUs, (B, 1)
    object scores, (B, S, S) target. Returns the loss and the mean IoU of the best mask."""
    target = target[:, None].expand_as(multimasks)
    present = (target.flatten(1).sum(-1) > 0).float()  # (B,)
    focal = focal_loss(multimasks, target)
    dice = dice_loss(multimasks, target)
    pred = multimasks > 0
    actual_iou = mask_ious(pred, target > 0)
    iou_loss = (ious - actual_iou).abs()
    combined = 20 * focal + dice
    best = combined.argmin(dim=1, keepdim=True)
    mask_loss = combined.gather(1, best)[:, 0]
    iou_loss = iou_loss.mean(1)
    score_loss = F.binary_cross_entropy_with_logits(
        object_score_logits[:, 0].float(), present, reduction="none"
    )
    loss = (mask_loss * present + iou_loss * present + score_loss).mean()
    best_iou = actual_iou.gather(1, best)[:, 0]
    return loss, float((best_iou * present).sum() / present.sum().clamp(min=1))


# --------------------------------------------------------------------------- training


def _points(clicks: list[list[tuple[float, float, int]]], sizes, image_size: int):
    coords = torch.tensor(
        [
            [[x / w * image_size, y / h * image_size] for x, y, _ in row]
            for row, (h, w) in zip(clicks, sizes, strict=True)
        ],
        dtype=torch.float32,
    )
    labels = torch.tensor([[lab for _, _, lab in row] for row in clicks], dtype=torch.int32)
    return {"point_coords": coords, "point_labels": labels}


def _centroid(mask: np.ndarray) -> np.ndarray:
    """(y, x) of a mask's centre; the middle of the frame for an empty one."""
    ys, xs = np.nonzero(mask)
    return np.array([ys.mean(), xs.mean()]) if len(ys) else np.array(mask.shape) / 2


def _video_res(high_res_masks: torch.Tensor, sizes) -> list[np.ndarray]:
    """Binary masks at each clip's own resolution, as the engine shows them."""
    out = []
    for b, (h, w) in enumerate(sizes):
        m = F.interpolate(
            high_res_masks[b : b + 1].detach().float(),
            size=(h, w),
            mode="bilinear",
            align_corners=False,
        )
        out.append((m[0, 0] > 0).numpy())
    return out


def _step(model, frame_idx, is_init, feats, pos, sizes_feat, points, prev, output_dict, n_frames):
    """SAM 2's track_step on one frame; the frame's memory is encoded only when a later
    frame will read it (a clip's last frame, or a single frame, has no reader, and the
    encoder is a sizeable share of a step)."""
    current_out, sam_outputs, _, _ = model._track_step(
        frame_idx,
        is_init,
        feats,
        pos,
        sizes_feat,
        points,
        None,
        output_dict,
        n_frames,
        False,
        prev,
    )
    (_, high_multi, ious, low_res, high_res, obj_ptr, scores) = sam_outputs
    current_out["pred_masks"] = low_res
    current_out["pred_masks_high_res"] = high_res
    current_out["obj_ptr"] = obj_ptr
    if frame_idx < n_frames - 1:
        model._encode_memory_in_output(
            feats, sizes_feat, points, True, high_res, scores, current_out
        )
    return current_out, high_multi, ious, scores


class Batch:
    """The objects of one step's clips, tracked together as one SAM 2 batch."""

    def __init__(
        self, model, clips, n_frames: int, prev_grad: bool = False, correction_weight: float = 1.0
    ):
        self.model, self.n_frames, self.prev_grad = model, n_frames, prev_grad
        self.correction_weight = correction_weight
        self.image_size = model.image_size
        self.images = torch.cat([images for images, _, _ in clips])  # (clips*T, 3, S, S)
        # One batch entry per tracked object: B = all targets of all clips.
        entries = [
            (c, video_size, target)
            for c, (_, video_size, targets) in enumerate(clips)
            for target in targets
        ]
        self.clip_of_target = torch.tensor([c for c, _, _ in entries])
        self.sizes = [video_size for _, video_size, _ in entries]
        self.gts = [gt for _, _, (gt, _) in entries]
        self.targets = torch.stack([small for _, _, (_, small) in entries])  # (B, T, S, S)
        self.size = len(entries)
        self.output_dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}

    def encode(self, frames: list[int] | None = None) -> None:
        """Image features of ``frames`` of every clip (all frames by default)."""
        model, n_frames = self.model, self.n_frames
        frames = list(range(n_frames)) if frames is None else frames
        n_clips = len(self.images) // n_frames
        rows = [c * n_frames + t for c in range(n_clips) for t in frames]
        backbone_out = model.forward_image(self.images[rows])
        _, feats, pos, self.feat_sizes = model._prepare_backbone_features(backbone_out)
        self.encoded_frames = frames
        self.vision_feats, self.vision_pos = feats, pos
        self._per_frame: dict[int, tuple] = {}

    def frame_feats(self, t: int):
        """Each target's vision features and positions of frame t, from (HW, clips*T', C)
        laid out clip-major over the encoded frames. Taken once per frame, so a frame run
        again for a correction adds to the same gradient."""
        if t not in self._per_frame:
            index = self.clip_of_target * len(self.encoded_frames) + self.encoded_frames.index(t)
            self._per_frame[t] = (
                [x[:, index] for x in self.vision_feats],
                [x[:, index] for x in self.vision_pos],
            )
        return self._per_frame[t]

    def step(self, t: int, is_init: bool, points=None, prev=None):
        feats, pos = self.frame_feats(t)
        return _step(
            self.model,
            t,
            is_init,
            feats,
            pos,
            self.feat_sizes,
            points,
            prev,
            self.output_dict,
            self.n_frames,
        )

    def drifts(self, t: int, rng: np.random.Generator, share: float) -> dict:
        """For a share of the targets with another one in their clip visible on frame t,
        the nearest such one, which their prediction is to be made to have drifted onto,
        taking it in beside the object or (``True``, one time in three) in its place."""
        if share <= 0:
            return {}
        centres = {o: _centroid(self.gts[o][t]) for o in range(self.size)}
        drift_onto = {}
        for b in range(self.size):
            others = [
                o
                for o in range(self.size)
                if o != b
                and self.clip_of_target[o] == self.clip_of_target[b]
                and self.gts[o][t].any()
            ]
            if not others or rng.random() >= share:
                continue
            nearest = min(others, key=lambda o: np.hypot(*(centres[o] - centres[b])))
            drift_onto[b] = (nearest, bool(rng.random() < 1 / 3))
        return drift_onto

    def forget_tracked_before(self, t: int) -> None:
        """Drop the tracked frames' memory before t, as the engine does past a fix (for
        every object of the batch: the engine keeps it for a fix that finds no object)."""
        non_cond = self.output_dict["non_cond_frame_outputs"]
        for frame in [frame for frame in non_cond if frame < t]:
            del non_cond[frame]

    def loss(self, multi, ious, scores, t: int):
        return frame_loss(multi, ious, scores, self.targets[:, t])

    def correct(
        self,
        out,
        clicks,
        t: int,
        is_init: bool,
        rng: np.random.Generator,
        drift_onto: dict[int, tuple[int, bool]] | None = None,
    ):
        """Add a click on each object's error to ``clicks`` and run frame t again with
        them and the previous logits, as SAM 2's predictor does for a correction.

        ``drift_onto`` maps a target to another target of its clip whose mask its
        prediction is made to have taken in (``True``: in its place), before the click."""
        preds = _video_res(out["pred_masks_high_res"], self.sizes)
        prev = out["pred_masks"].clamp(-32, 32)
        if not self.prev_grad:
            prev = prev.detach()
        for b, (other, instead) in (drift_onto or {}).items():
            preds[b] = self.gts[other][t] | (preds[b] & ~instead)
            # As the engine makes a stored mask into logits: +10 inside, -10 outside.
            taken = (
                F.interpolate(
                    self.targets[other, t][None, None], size=prev.shape[-2:], mode="area"
                )[0, 0]
                * 20
                - 10
            )
            row = taken if instead else torch.maximum(prev[b, 0], taken)
            prev = prev.clone()  # not in place: with --prev-grad, maximum's backward reads it
            prev[b, 0] = row
        for b, row in enumerate(clicks):
            click = corrective_click(self.gts[b][t], preds[b], rng)
            row.append(click if click else (0.0, 0.0, -1))  # label -1: a padding point
        points = _points(clicks, self.sizes, self.image_size)
        out, multi, ious, scores = self.step(t, is_init, points, prev)
        loss, iou = self.loss(multi, ious, scores, t)
        return out, loss * self.correction_weight, iou


def sample_clips(
    rng: np.random.Generator, clip_index: int, n_frames: int, image_size: int, args, p_twins: float
) -> list:
    """A step's ``--batch`` clips, from training video ``clip_index`` on."""
    return [
        sample_clip(
            rng,
            clip_index + c,
            n_frames,
            image_size,
            args.targets,
            args.shape_changes,
            args.max_scale,
            p_twins,
            args.p_crowded,
        )
        for c in range(args.batch)
    ]


def train_step(model, rng: np.random.Generator, clip_index: int, args, p_twins: float) -> tuple:
    n_frames, image_size = args.frames, model.image_size
    batch = Batch(
        model,
        sample_clips(rng, clip_index, n_frames, image_size, args, p_twins),
        n_frames,
        args.prev_grad,
        args.correction_weight,
    )
    batch.encode()
    n_corrections = int(rng.choice([0, 0, 1, 2]))
    correct_frame = -1
    if n_frames > 1 and rng.random() < args.p_correct:
        correct_frame = int(rng.integers(1, n_frames))

    losses, ious_seen = [], []
    for t in range(n_frames):
        if t == 0:
            clicks = [[(*interior_click(g[0], rng), 1)] for g in batch.gts]
            points = _points(clicks, batch.sizes, image_size)
            out, multi, ious, scores = batch.step(t, True, points)
            loss, iou = batch.loss(multi, ious, scores, t)
            losses.append(loss)
            for _ in range(n_corrections):
                out, loss, iou = batch.correct(out, clicks, t, True, rng)
                losses.append(loss)
            batch.output_dict["cond_frame_outputs"][t] = out
        else:
            out, multi, ious, scores = batch.step(t, False)
            loss, iou = batch.loss(multi, ious, scores, t)
            losses.append(loss)
            if t == correct_frame:
                drift_onto = batch.drifts(t, rng, args.p_merged)
                out, loss, _ = batch.correct(
                    out, [[] for _ in range(batch.size)], t, False, rng, drift_onto
                )
                losses.append(loss)
                batch.output_dict["cond_frame_outputs"][t] = out
                if args.fix_supersedes_memory:
                    batch.forget_tracked_before(t)
            else:
                batch.output_dict["non_cond_frame_outputs"][t] = out
        ious_seen.append(iou)
    total = torch.stack(losses).mean()
    tracked = float(np.mean(ious_seen[1:])) if n_frames > 1 else float("nan")
    return total, tracked, ious_seen[0]


def drift_correction_step(
    model, rng: np.random.Generator, clip_index: int, args, p_twins: float
) -> tuple:
    """What a person does on a long video: click the object on the first frame, let it be
    tracked for a while, then fix the frame where the mask went worst and track on.

    The tracking before the fix runs without gradient (it is the model's own drift, the
    situation to recover from, not something to learn). The loss is on the fixed frame and
    the ``--frames`` after it, which see SAM 2's memory as it stands in use: a first frame
    that no longer says where the object is, tracked frames that went wrong, and the fix.
    A model trained only on short clips learns to trust the first frame and its recent
    frames and to ignore a later fix.
    """
    drift, after, image_size = args.drift_frames, args.frames, model.image_size
    n_frames = 1 + drift + after
    batch = Batch(
        model,
        sample_clips(rng, clip_index, n_frames, image_size, args, p_twins),
        n_frames,
        args.prev_grad,
        args.correction_weight,
    )
    cond = batch.output_dict["cond_frame_outputs"]
    non_cond = batch.output_dict["non_cond_frame_outputs"]
    with torch.no_grad():
        batch.encode(list(range(1 + drift)))
        clicks = [[(*interior_click(g[0], rng), 1)] for g in batch.gts]
        out, *_ = batch.step(0, True, _points(clicks, batch.sizes, image_size))
        cond[0] = out
        drifted = []
        for t in range(1, 1 + drift):
            out, multi, ious, scores = batch.step(t, False)
            non_cond[t] = out
            drifted.append(float(mask_ious(multi[:, 0] > 0, batch.targets[:, t] > 0).mean()))
    fix = 1 + int(np.argmin(drifted[1:])) + 1  # never the frame right after the click
    for t in [t for t in non_cond if t > fix]:
        del non_cond[t]
    batch.encode(list(range(fix, fix + after + 1)))
    out = non_cond.pop(fix)
    losses, clicks = [], [[] for _ in range(batch.size)]
    for _ in range(1 if rng.random() < 0.7 else 2):  # at times a second click on what is left
        out, loss, fixed_iou = batch.correct(out, clicks, fix, False, rng)
        losses.append(loss)
    cond[fix] = out
    if args.fix_supersedes_memory:
        batch.forget_tracked_before(fix)
    ious_seen = []
    for t in range(fix + 1, fix + after + 1):
        out, multi, ious, scores = batch.step(t, False)
        loss, iou = batch.loss(multi, ious, scores, t)
        losses.append(loss)
        ious_seen.append(iou)
        non_cond[t] = out
    return torch.stack(losses).mean(), float(np.mean(ious_seen)), fixed_iou


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # No abbreviations: the script looks for --portable-kernels whole before it parses.
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=2800)
    parser.add_argument("--batch", type=int, default=4, help="clips per step")
    parser.add_argument("--targets", type=int, default=1, help="objects tracked per clip")
    parser.add_argument(
        "--shape-changes", action="store_true", help="some clips with shapes that deform or leave"
    )
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument(
        "--max-scale", type=float, default=1.0, help="half the videos up to this much larger"
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--iou-head-lr", type=float, default=None, help="IoU prediction head's (default: --lr)"
    )
    parser.add_argument(
        "--encoder-lr", type=float, default=None, help="image encoder's (default: --lr)"
    )
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--init", type=Path, default=None, help="start from these weights")
    parser.add_argument("--p-correct", type=float, default=0.5)
    parser.add_argument(
        "--correction-weight",
        type=float,
        default=1.0,
        help="weight of a corrected frame's loss against a tracked frame's",
    )
    parser.add_argument(
        "--prev-grad",
        action="store_true",
        help="a correction's loss reaches the prediction whose logits it is fed, as in SAM 2",
    )
    parser.add_argument(
        "--p-crowded", type=float, default=0.0, help="share of clips of touching look-alikes"
    )
    parser.add_argument(
        "--p-merged",
        type=float,
        default=0.0,
        help="share of later-frame corrections of a mask that drifted onto a neighbour",
    )
    parser.add_argument("--p-twins", type=float, default=0.0, help="share of look-alike clips")
    parser.add_argument(
        "--p-twins-end",
        type=float,
        default=None,
        help="share of look-alike clips at the last step, reached linearly (default: --p-twins)",
    )
    parser.add_argument(
        "--drift-frames",
        type=int,
        default=0,
        help="frames tracked before a fix in drift-correction steps (0: none of those)",
    )
    parser.add_argument(
        "--drift-share", type=float, default=1.0, help="share of steps that are drift corrections"
    )
    parser.add_argument(
        "--drift-memory-only",
        action="store_true",
        help="drift corrections train only the memory encoder and memory attention",
    )
    parser.add_argument(
        "--fix-supersedes-memory",
        action="store_true",
        help="frames after a later-frame correction read no tracked frame before it",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="frame size to train at (default: the config's)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--portable-kernels",
        action="store_true",
        help="cap the kernels at AVX2 on x86-64, for the weights not to depend on AVX-512",
    )
    parser.add_argument("--out", type=Path, default=MINI_DIR / f"{CONFIG_NAME}.pt")
    parser.add_argument("--log-every", type=int, default=50)
    args = parser.parse_args(argv)
    if args.drift_frames == 1 or args.drift_frames < 0:
        # The fix is never on the frame right after the click, so there must be a later one.
        parser.error("--drift-frames must be 0 or at least 2")
    if args.correction_weight < 0:
        parser.error("--correction-weight must not be negative")
    if args.portable_kernels and portable_kernel_settings(os.environ, platform.machine()):
        parser.error("--portable-kernels takes effect only where the script runs as a command")
    return args


def twins_share(args: argparse.Namespace, step: int) -> float:
    """The share of look-alike clips at ``step``: from ``--p-twins`` to ``--p-twins-end``."""
    if args.p_twins_end is None:
        return args.p_twins
    progress = step / max(1, args.steps - 1)
    return args.p_twins + (args.p_twins_end - args.p_twins) * progress


def fingerprint(state: dict[str, torch.Tensor]) -> str:
    """A short digest of every weight to the last bit: two runs' logs show the first
    step where their weights part, which the rounded loss can hide for a long while."""
    digest = hashlib.sha1()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


def train(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    """Train as ``args`` say; the trained weights."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    rng = np.random.default_rng(args.seed)  # every numpy draw comes from here

    model = build_training_model(args.image_size)
    model.train()
    if args.init is not None:
        model.load_state_dict(torch.load(args.init, map_location="cpu")["model"])
    groups: dict[tuple[float, float], list] = {}
    for name, param in model.named_parameters():
        lr = args.lr
        if args.iou_head_lr is not None and "iou_prediction_head" in name:
            lr = args.iou_head_lr
        if args.encoder_lr is not None and name.startswith("image_encoder."):
            lr = args.encoder_lr
        decay = args.weight_decay if param.ndim > 1 and "pos" not in name else 0.0
        groups.setdefault((lr, decay), []).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
    )
    warmup = max(1, args.steps // 20)
    not_memory = [p for name, p in model.named_parameters() if not name.startswith(MEMORY_MODULES)]

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    start = time.time()
    running = None
    for step in range(args.steps):
        drift = args.drift_frames > 0 and rng.random() < args.drift_share
        loss, track_iou, first_iou = (drift_correction_step if drift else train_step)(
            model, rng, step * args.batch, args, twins_share(args, step)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if drift and args.drift_memory_only:
            for param in not_memory:  # no gradient: AdamW leaves them as they are
                param.grad = None
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        stats = np.array([loss.item(), first_iou, track_iou])
        running = stats if running is None else 0.9 * running + 0.1 * stats
        if step % args.log_every == 0 or step == args.steps - 1:
            print(
                f"step {step:5d}  loss {running[0]:.4f}  iou first {running[1]:.3f}  "
                f"iou tracked {running[2]:.3f}  lr {scheduler.get_last_lr()[0]:.2e}  "
                f"weights {fingerprint(model.state_dict())}  {time.time() - start:.0f}s",
                flush=True,
            )
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def _cpu_name() -> str:
    """The CPU's name with its family and model numbers, which tell generations apart
    where the name alone does not (a virtual machine may show just "AMD EPYC")."""
    try:
        lines = Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name = fields.get("model name", platform.machine())
    return f"{name} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


# Settings that make torch's, oneDNN's and MKL's kernels other than the CPU would pick.
KERNEL_CHOICE = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR")
# Each capped at AVX2, which x86-64 CPUs of the last decade all have, so that a CPU with
# AVX-512 runs the same code, summing floats in the same order, as one without.
PORTABLE_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",
}


def portable_kernel_settings(environ: Mapping[str, str], machine: str) -> dict[str, str]:
    """What to add to ``environ`` for the kernels to be capped at AVX2 on an x86-64
    machine (nothing on others); a choice already made there, under either of oneDNN's
    names, is left as it is."""
    if machine.lower() not in ("x86_64", "amd64"):
        return {}
    made = set(environ).intersection(KERNEL_CHOICE)
    if "DNNL_MAX_CPU_ISA" in made:
        made.add("ONEDNN_MAX_CPU_ISA")
    return {name: value for name, value in PORTABLE_KERNELS.items() if name not in made}


def provenance(args: argparse.Namespace, argv: list[str]) -> dict[str, object]:
    """How a checkpoint was made, for a rerun to be checked against it: the command, the
    weights it started from, and what sets the order floats are summed in (the CPU and the
    vector instructions torch picked for it, any setting that overrides the kernels' own
    choice, the thread count, the library versions), as a rerun gives the same weights
    only where all of these are the same."""
    return {
        "command": shlex.join(["python", "tools/train_mini_sam2.py", *argv]),
        "init_sha256": None if args.init is None else file_hash(str(args.init), alg="sha256"),
        "cpu": _cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": args.threads,
        "environment": {name: os.environ[name] for name in KERNEL_CHOICE if name in os.environ},
        "versions": {
            "python": platform.python_version(),
            "torch": str(torch.__version__),  # a str subclass weights_only refuses
            "numpy": np.__version__,
            "sam2": version("sam2"),
        },
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    start = time.time()
    state = train(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so an interrupted save leaves no torn file.
    partial = args.out.with_name(args.out.name + ".partial")
    torch.save({"model": state, "made_by": provenance(args, argv)}, partial)
    partial.replace(args.out)
    print(f"saved {args.out} ({args.out.stat().st_size:,} bytes) in {time.time() - start:.0f}s")


if __name__ == "__main__":
    settings = portable_kernel_settings(os.environ, platform.machine())
    if "--portable-kernels" in sys.argv[1:] and settings:
        # Each library reads its setting once, when it first computes (torch may have by
        # now, importing sam2), so only a fresh process is sure to run with them.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **settings})
    main()
