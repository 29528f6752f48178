"""Synthetic videos of moving, occluding shapes with exact ground truth.

Used as napari sample data (so the tool can be tried offline) and by tests that need
to know where every object really is. Everything is generated from a seed, so the same
seed always gives the same video.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPE_KINDS = ("disc", "square", "triangle", "ellipse")
# Layer metadata key marking a video made here, which the bundled model was trained on.
SYNTHETIC_KEY = "synthetic"


@dataclass(frozen=True)
class SyntheticVideo:
    """Frames and ground truth of a generated video.

    ``frames`` is (T, H, W, 3) uint8. ``labels`` is (T, H, W) uint8 where each pixel
    holds the id (1..n) of the visible object on top, or 0 for background. ``full_masks``
    is (n_objects, T, H, W) bool: each object's full extent, occluded parts included.
    """

    frames: np.ndarray
    labels: np.ndarray
    full_masks: np.ndarray
    fps: float
    names: tuple[str, ...]

    @property
    def n_objects(self) -> int:
        return len(self.names)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Value noise in [0, 1]: random values on a coarse grid, bilinearly upsampled."""
    gh, gw = height // cell + 2, width // cell + 2
    grid = rng.random((gh, gw))
    ys = np.arange(height) / cell
    xs = np.arange(width) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    # Along x on the coarse rows first, then along y: the same sums as interpolating
    # each pixel from its four grid values, at half the full-size work.
    rows = grid[:, x0] * (1 - fx) + grid[:, x0 + 1] * fx
    return rows[y0] * (1 - fy) + rows[y0 + 1] * fy


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    coarse = _smooth_noise(rng, height, width, cell=48)
    fine = _smooth_noise(rng, height, width, cell=6)
    yy, xx = np.arange(height)[:, None], np.arange(width)[None, :]
    stripes = 0.5 + 0.5 * np.sin((xx * 0.9 + yy * 0.4) / 7.0)
    base = 0.45 * coarse + 0.35 * fine + 0.2 * stripes
    tint = rng.uniform(0.35, 0.75, size=3)
    rgb = base[..., None] * tint[None, None, :] + 0.1
    return np.clip(rgb * 255, 0, 255).astype(np.uint8)


def _shape_mask(
    kind: str, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r: float, stretch=1.0
):
    # ``stretch`` > 1 makes the shape taller and narrower at the same area.
    dy, dx = (yy - cy) / stretch, (xx - cx) * stretch
    if kind == "disc":
        return dy * dy + dx * dx <= r * r
    if kind == "square":
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if kind == "ellipse":
        return (dy / (0.6 * r)) ** 2 + (dx / (1.3 * r)) ** 2 <= 1.0
    # Upward-pointing triangle inscribed in the radius.
    return (dy <= r * 0.7) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)


def make_synthetic_video(
    n_frames: int = 60,
    height: int = 360,
    width: int = 480,
    n_objects: int = 4,
    seed: int = 0,
    fps: float = 15.0,
    deform: float = 0.0,
    leave: bool = False,
    twins: bool = False,
    crowd: bool = False,
) -> SyntheticVideo:
    """Generate a textured background with ``n_objects`` shapes that move and occlude.

    Objects move with constant speed and bounce off the borders, or with ``leave`` they
    cross the borders, are gone for a while and come back in on the opposite side. Later
    objects are drawn on top of earlier ones, so paths that cross produce occlusions.
    ``deform`` > 0 makes each shape swell, shrink and stretch over time by up to that
    fraction of its size. With ``twins`` every object has the same shape and texture, so
    only where an object was tells it from the others. With ``crowd`` the objects start
    touching or overlapping the first one, in colours close to one another, so that only
    a faint edge in colour and texture tells where one ends and the next begins.
    """
    if n_objects < 1 or n_objects > len(SHAPE_KINDS) * 4:
        raise ValueError(f"n_objects must be between 1 and {len(SHAPE_KINDS) * 4}.")
    rng = np.random.default_rng(seed)
    background = _background(rng, height, width)
    # A column and a row: shape masks broadcast them to the frame.
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None, :]

    radius = rng.uniform(0.09, 0.14, size=n_objects) * min(height, width)
    pos = np.stack(
        [rng.uniform(radius, height - radius), rng.uniform(radius, width - radius)], axis=1
    )
    speed = rng.uniform(2.0, 5.0, size=n_objects)
    angle = rng.uniform(0, 2 * np.pi, size=n_objects)
    vel = np.stack([np.sin(angle), np.cos(angle)], axis=1) * speed[:, None]
    # Each texture is a noise field and a colour, combined only where the shape is drawn
    # (a whole-frame RGB texture per object costs more than the frames that show it).
    textures = [
        (_smooth_noise(rng, height, width, cell=4), rng.uniform(0.2, 1.0, size=3))
        for _ in range(n_objects)
    ]
    kinds = [SHAPE_KINDS[i % len(SHAPE_KINDS)] for i in range(n_objects)]
    if twins:  # drawn only then, like the options below
        kinds = [SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]] * n_objects
        textures = [textures[0]] * n_objects
    # Drawn only when asked for, so videos without these options stay as they were.
    if deform > 0:
        period = rng.uniform(12, 30, size=(2, n_objects))
        phase = rng.uniform(0, 2 * np.pi, size=(2, n_objects))
    if crowd:
        base = rng.uniform(0.25, 0.95, size=3)
        textures = [
            (noise, np.clip(base + rng.uniform(-0.15, 0.15, size=3), 0.1, 1.0))
            for noise, _ in textures
        ]
        # From just touching the first object to half overlapping it.
        bearing = rng.uniform(0, 2 * np.pi, size=n_objects)
        reach = rng.uniform(0.5, 1.0, size=n_objects) * (radius[0] + radius)
        pos[1:] = (
            pos[0] + np.stack([np.sin(bearing), np.cos(bearing)], axis=1)[1:] * reach[1:, None]
        )
        pos[:, 0] = np.clip(pos[:, 0], radius, height - radius)
        pos[:, 1] = np.clip(pos[:, 1], radius, width - radius)
    # With ``leave``, positions wrap around a margin wide enough for a shape to vanish.
    margin = 2.2 * radius * (1 + deform)

    frames = np.empty((n_frames, height, width, 3), dtype=np.uint8)
    labels = np.zeros((n_frames, height, width), dtype=np.uint8)
    full_masks = np.zeros((n_objects, n_frames, height, width), dtype=bool)
    for t in range(n_frames):
        frame = background.copy()
        for i in range(n_objects):
            r, stretch = radius[i], 1.0
            if deform > 0:
                wave = np.sin(2 * np.pi * t / period[:, i] + phase[:, i])
                r, stretch = r * (1 + deform * wave[0]), 1 + deform * wave[1]
            mask = _shape_mask(kinds[i], yy, xx, pos[i, 0], pos[i, 1], r, stretch)
            full_masks[i, t] = mask
            noise, colour = textures[i]
            texture = (noise[mask][:, None] * 0.35 + 0.65) * colour[None, :]
            frame[mask] = (texture * 255).astype(np.uint8)
            labels[t][mask] = i + 1
        frames[t] = frame
        pos += vel
        for axis, limit in ((0, height), (1, width)):
            if leave:
                span = limit + 2 * margin
                pos[:, axis] = (pos[:, axis] + margin) % span - margin
                continue
            low, high = pos[:, axis] < radius, pos[:, axis] > limit - radius
            vel[low | high, axis] *= -1
            pos[:, axis] = np.clip(pos[:, axis], radius, limit - radius)

    names = tuple(f"{kind} {i + 1}" for i, kind in enumerate(kinds))
    return SyntheticVideo(frames, labels, full_masks, fps, names)
