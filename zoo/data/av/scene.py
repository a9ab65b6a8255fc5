"""Scene plans and video frames of the generated audio-visual corpus.

A clip's plan (`plan_clip()`) draws, from one seeded generator: a textured background, silent distractors
(bars and dot pairs in the classes' colours, so that colour alone does not name the sounding class) and, for
every slot, either a silent stretch or an event: a class, a shade of its colour, a quadrant, a size, still or
moving, and its time span. `render_frames()` draws frame $k$ at slot $k$'s centre (a moving object is
smeared along its path over a short exposure) and returns the sounding object's mask.

Unseen combinations: an event's *combination* is (class, quadrant, background texture, shade). Those with
``(class + quadrant + background + shade) % 4 == 0`` appear only in the test split (`held_out()`); each of
their parts is seen in training, never together.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoo.data.av.config import CLASSES, AVCorpusConfig

__all__ = [
    "BACKGROUNDS",
    "DISTRACTOR_SHAPES",
    "SHADES",
    "SPLIT_IDS",
    "clip_rng",
    "held_out",
    "plan_clip",
    "render_frames",
    "shape_mask",
]

#: Background textures: stripes, stripes the other way, a checkerboard and smooth blobs.
BACKGROUNDS = ("hstripes", "vstripes", "checker", "blobs")
#: Brightness factors of a class colour's shades.
SHADES = (0.55, 0.78, 1.0)
#: Shapes of the silent distractors (never a class's shape).
DISTRACTOR_SHAPES = ("hbar", "vbar", "dots")
#: The split number that enters every clip's seed: splits draw from disjoint seeds.
SPLIT_IDS = {"train": 1, "val": 2, "test": 3}

_EXPOSURE = (-0.08, 0.0, 0.08)  # seconds around the frame time at which a moving object is drawn


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of clip ``index`` of ``split``: seeded by ``(seed, split id, index)``."""
    return np.random.default_rng([int(seed), SPLIT_IDS[split], int(index)])


def held_out(cls: int, quadrant: int, background: int, shade: int) -> bool:
    """Whether the combination is reserved for the test split."""
    return (cls + quadrant + background + shade) % 4 == 0


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of ``shape`` of radius ``r`` on offset grids ``dx``, ``dy`` from its centre."""
    ax, ay, d2 = np.abs(dx), np.abs(dy), dx * dx + dy * dy
    if shape == "square":
        return np.maximum(ax, ay) <= 0.8 * r
    if shape == "disc":
        return d2 <= r * r
    if shape == "triangle":
        return (dy >= -r) & (dy <= 0.8 * r) & (ax <= (dy + r) * 0.6)
    if shape == "cross":
        w = max(1.0, r / 3)
        return ((ax <= w) & (ay <= r)) | ((ay <= w) & (ax <= r))
    if shape == "ring":
        return (d2 <= r * r) & (d2 >= (0.5 * r) ** 2)
    if shape == "diamond":
        return ax + ay <= r
    if shape == "hbar":
        return (ay <= 1.0) & (ax <= 1.3 * r)
    if shape == "vbar":
        return (ax <= 1.0) & (ay <= 1.3 * r)
    if shape == "dots":
        return ((dx - r / 2) ** 2 + dy * dy <= 2.0) | ((dx + r / 2) ** 2 + dy * dy <= 2.0)
    raise ValueError(f"unknown shape {shape!r}")


def _quadrant_centre(rng: np.random.Generator, q: int, r: int, size: int) -> tuple[float, float]:
    half = size / 2
    x0 = half if q % 2 else 0.0
    y0 = half if q >= 2 else 0.0
    lo, hi = r + 0.5, half - 0.5
    return x0 + rng.uniform(lo, max(lo, hi)), y0 + rng.uniform(lo, max(lo, hi))


def plan_clip(cfg: AVCorpusConfig, rng: np.random.Generator, split: str) -> dict[str, Any]:
    """Draw one clip's plan (plain numbers; rendering is deterministic given it)."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {', '.join(SPLIT_IDS)}; got {split!r}")
    size, slot = cfg.image_size, 1.0 / cfg.fps
    bg = int(rng.integers(len(BACKGROUNDS)))
    base = rng.uniform(0.25, 0.6)
    background = {
        "kind": bg,
        "colours": [
            (base + rng.uniform(-0.12, 0.12, 3)).tolist(),
            (base + rng.uniform(-0.12, 0.12, 3)).tolist(),
        ],
        "period": float(rng.uniform(4.0, 10.0)),
        "phase": float(rng.uniform(0, 2 * np.pi)),
        "blobs": rng.uniform(0, size, (4, 2)).tolist(),
    }
    distractors = []
    for _ in range(int(rng.integers(cfg.max_distractors + 1))):
        distractors.append(
            {
                "shape": DISTRACTOR_SHAPES[int(rng.integers(len(DISTRACTOR_SHAPES)))],
                "rgb": CLASSES[int(rng.integers(cfg.classes))].rgb,
                "shade": SHADES[int(rng.integers(len(SHADES)))],
                "xy": rng.uniform(3, size - 3, 2).tolist(),
                "r": float(rng.uniform(cfg.size[0], cfg.size[1])),
            }
        )
    events: list[dict[str, Any] | None] = []
    for k in range(cfg.frames):
        if rng.random() < cfg.silent_prob:
            events.append(None)
            continue
        c = int(rng.integers(cfg.classes))
        shade = int(rng.integers(len(SHADES)))
        allowed = [q for q in range(4) if held_out(c, q, bg, shade) == (split == "test")]
        q = allowed[int(rng.integers(len(allowed)))]
        r = int(rng.integers(cfg.size[0], cfg.size[1] + 1))
        cx, cy = _quadrant_centre(rng, q, r, size)
        moving = bool(rng.random() < cfg.moving_prob)
        speed = rng.uniform(15.0, 35.0) if moving else 0.0
        angle = rng.uniform(0, 2 * np.pi)
        dur = rng.uniform(0.6, 0.9) * slot
        start = k * slot + rng.uniform(0, slot - dur)
        events.append(
            {
                "cls": c,
                "shade": shade,
                "quadrant": q,
                "r": r,
                "xy": [cx, cy],
                "velocity": [speed * np.cos(angle), speed * np.sin(angle)],
                "moving": moving,
                "start": start,
                "end": start + dur,
                "gain_db": float(rng.uniform(-10.0, -3.0)),
                "sound_seed": int(rng.integers(2**31)),
            }
        )
    return {
        "background": background,
        "distractors": distractors,
        "events": events,
        "pixel_seed": int(rng.integers(2**31)),
    }


def _background(bg: dict[str, Any], yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    c1, c2 = np.asarray(bg["colours"][0]), np.asarray(bg["colours"][1])
    kind, period, phase = BACKGROUNDS[bg["kind"]], bg["period"], bg["phase"]
    if kind == "hstripes":
        t = 0.5 + 0.5 * np.sin(2 * np.pi * yy / period + phase)
    elif kind == "vstripes":
        t = 0.5 + 0.5 * np.sin(2 * np.pi * xx / period + phase)
    elif kind == "checker":
        t = ((np.floor(xx / period * 1.5) + np.floor(yy / period * 1.5)) % 2).astype(np.float64)
    else:
        t = np.zeros_like(xx, dtype=np.float64)
        for bx, by in bg["blobs"]:
            t += np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * (period * 0.8) ** 2))
        t = np.clip(t, 0, 1)
    return c1 * (1 - t[..., None]) + c2 * t[..., None]


def render_frames(cfg: AVCorpusConfig, plan: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(T, H, W, 3)`` uint8 and the sounding object's masks ``(T, H, W)`` bool (empty when
    silent)."""
    size = cfg.image_size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    base = _background(plan["background"], yy, xx)
    for d in plan["distractors"]:
        m = shape_mask(d["shape"], xx - d["xy"][0], yy - d["xy"][1], d["r"])
        base[m] = np.asarray(d["rgb"]) / 255.0 * d["shade"]
    noise = np.random.default_rng(plan["pixel_seed"]).normal(0.0, 0.03, (cfg.frames, size, size, 3))
    frames = np.empty((cfg.frames, size, size, 3), dtype=np.uint8)
    masks = np.zeros((cfg.frames, size, size), dtype=bool)
    for k, ev in enumerate(plan["events"]):
        img = base.copy()
        if ev is not None:
            cls = CLASSES[ev["cls"]]
            exposure = _EXPOSURE if ev["moving"] else (0.0,)
            m = np.zeros((size, size), dtype=bool)
            for dt in exposure:
                cx = ev["xy"][0] + ev["velocity"][0] * dt
                cy = ev["xy"][1] + ev["velocity"][1] * dt
                m |= shape_mask(cls.shape, xx - cx, yy - cy, ev["r"])
            img[m] = np.asarray(cls.rgb) / 255.0 * SHADES[ev["shade"]]
            masks[k] = m
        frames[k] = np.clip(np.rint((img + noise[k]) * 255.0), 0, 255).astype(np.uint8)
    return frames, masks
