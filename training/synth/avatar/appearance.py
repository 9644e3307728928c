"""How an avatar looks: skin tone, hair, eyes, lips, shoes, and a colour and pattern for each garment.

Colours are sRGB in 0..1. The renderer paints each mesh vertex by its `Region`; the two garments (TOP, BOTTOM)
carry a pattern evaluated per pixel, so stripes and checks stay sharp at any distance.

Skin tones are the ten swatches of the Monk Skin Tone scale (Google, 2022, CC BY 4.0), which spans light to
deep skin more evenly than the Fitzpatrick types; each sampled tone is jittered a little so that no two
avatars share the exact swatch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from training.synth.avatar.mesh import Region

RGB = tuple[float, float, float]
Pattern = Literal["plain", "stripes", "checks"]
PATTERNS: tuple[Pattern, ...] = get_args(Pattern)


def _hex(code: str) -> RGB:
    return (int(code[1:3], 16) / 255.0, int(code[3:5], 16) / 255.0, int(code[5:7], 16) / 255.0)


MONK_SKIN_TONES: tuple[RGB, ...] = tuple(
    _hex(c)
    for c in ("#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96", "#a07e56", "#825c43", "#604134", "#3a312a",
              "#292420")
)  # fmt: skip
HAIR_COLOURS: tuple[RGB, ...] = tuple(
    _hex(c) for c in ("#0d0b0a", "#2a1d15", "#4a3224", "#6f4e37", "#a67b5b", "#d9b77e", "#8d3b1f", "#9a9a96")
)  # black, dark/mid/light brown, dark blond, blond, auburn, grey
EYE_COLOURS: tuple[RGB, ...] = tuple(_hex(c) for c in ("#3b2a20", "#5a3d24", "#4f6b3a", "#4a6a8a", "#6b6b5a"))
SHOE_COLOURS: tuple[RGB, ...] = tuple(_hex(c) for c in ("#111111", "#3b2a1e", "#f0f0f0", "#2b3a55", "#7a7a7a"))
GARMENT_COLOURS: tuple[RGB, ...] = tuple(
    _hex(c)
    for c in ("#1f2a44", "#2e5e8c", "#8fb3d9", "#f2f2f2", "#1a1a1a", "#7a1f2b", "#c0392b", "#e67e22", "#f1c40f",
              "#27ae60", "#145a32", "#6c3483", "#d98cb3", "#8e7f6a", "#c8b99a", "#555b61", "#a9a9a9", "#3d6b6b")
)  # fmt: skip


@dataclass(frozen=True)
class Garment:
    """A garment's base colour and pattern. `scale_m` is the pattern's period in metres on the body;
    `angle_deg` turns stripes and checks (0 = horizontal stripes)."""

    colour: RGB
    pattern: Pattern = "plain"
    second: RGB = (1.0, 1.0, 1.0)
    scale_m: float = 0.06
    angle_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"Garment.pattern: expected one of {', '.join(PATTERNS)}, got {self.pattern!r}")
        if not (0.005 <= self.scale_m <= 1.0):
            raise ValueError(f"Garment.scale_m: expected 0.005..1.0 metres, got {self.scale_m}")
        _check_rgb("Garment.colour", self.colour)
        _check_rgb("Garment.second", self.second)


@dataclass(frozen=True)
class Appearance:
    """Everything the renderer needs to colour one avatar."""

    skin: RGB
    hair: RGB
    eyes: RGB
    lips: RGB
    shoes: RGB
    top: Garment
    bottom: Garment

    def __post_init__(self) -> None:
        for name in ("skin", "hair", "eyes", "lips", "shoes"):
            _check_rgb(f"Appearance.{name}", getattr(self, name))

    def region_colours(self) -> np.ndarray:
        """(len(Region), 3) float32 base colour per region, indexed by Region value."""
        by_region = {
            Region.SKIN: self.skin,
            Region.HAIR: self.hair,
            Region.TOP: self.top.colour,
            Region.BOTTOM: self.bottom.colour,
            Region.SHOES: self.shoes,
            Region.EYES: self.eyes,
            Region.LIPS: self.lips,
        }
        return np.array([by_region[r] for r in Region], dtype=np.float32)


def _check_rgb(where: str, rgb: RGB) -> None:
    if len(rgb) != 3 or not all(math.isfinite(c) and 0.0 <= c <= 1.0 for c in rgb):
        raise ValueError(f"{where}: expected three sRGB values in 0..1, got {rgb!r}")


def _jitter(rgb: RGB, rng: np.random.Generator, sd: float) -> RGB:
    out = np.clip(np.asarray(rgb) * (1.0 + rng.normal(0.0, sd)) + rng.normal(0.0, sd / 3, 3), 0.0, 1.0)
    return (float(out[0]), float(out[1]), float(out[2]))


def _pick(options: tuple[RGB, ...], rng: np.random.Generator) -> RGB:
    return options[int(rng.integers(len(options)))]


def sample_garment(rng: np.random.Generator, *, pattern_p: tuple[float, float, float] = (0.55, 0.25, 0.20)) -> Garment:
    """A garment with a random colour; plain, stripes or checks with probabilities `pattern_p`."""
    colour = _jitter(_pick(GARMENT_COLOURS, rng), rng, 0.06)
    pattern: Pattern = PATTERNS[int(rng.choice(len(PATTERNS), p=np.asarray(pattern_p) / sum(pattern_p)))]
    second = _jitter(_pick(GARMENT_COLOURS, rng), rng, 0.06)
    scale = float(rng.uniform(0.02, 0.12))
    angle = float(rng.choice([0.0, 0.0, 90.0, 45.0])) + float(rng.normal(0.0, 3.0))
    return Garment(colour=colour, pattern=pattern, second=second, scale_m=scale, angle_deg=angle)


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """A random look: any Monk skin tone, natural hair and eye colours, two garments and shoes."""
    skin = _jitter(_pick(MONK_SKIN_TONES, rng), rng, 0.04)
    lips_base = np.asarray(skin) * np.array([0.85, 0.62, 0.62])
    lips = _jitter((float(lips_base[0]), float(lips_base[1]), float(lips_base[2])), rng, 0.03)
    return Appearance(
        skin=skin,
        hair=_jitter(_pick(HAIR_COLOURS, rng), rng, 0.08),
        eyes=_jitter(_pick(EYE_COLOURS, rng), rng, 0.05),
        lips=lips,
        shoes=_jitter(_pick(SHOE_COLOURS, rng), rng, 0.05),
        top=sample_garment(rng),
        bottom=sample_garment(rng, pattern_p=(0.8, 0.1, 0.1)),
    )
