"""Every colour the dashboard uses, in one place: charts read these maps, the pages' CSS reads `css()`.

The colours are the Okabe–Ito set, which stays distinguishable with the common colour-vision deficiencies
(deuteranopia, protanopia, tritanopia). One meaning keeps one colour on every page: "positive" and the
"high" risk band are the same vermillion everywhere, "negative" and "ok" the same bluish green.
"""

from __future__ import annotations

# Okabe & Ito (2008), "Color Universal Design".
OKABE_ITO: dict[str, str] = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "black": "#000000",
}
GREY = "#9CA3AF"

# Meanings: gait classes, posture risk bands, head-pose severity, alert severity, "suppressed".
MEANING: dict[str, str] = {
    "negative": OKABE_ITO["bluish_green"],
    "neutral": OKABE_ITO["orange"],
    "positive": OKABE_ITO["vermillion"],
    "ok": OKABE_ITO["bluish_green"],
    "moderate": OKABE_ITO["orange"],
    "high": OKABE_ITO["vermillion"],
    "info": OKABE_ITO["blue"],
    "warning": OKABE_ITO["orange"],
    "critical": OKABE_ITO["vermillion"],
    "suppressed": GREY,
    # Reasons a walk-through was not screened: categories of their own, so none takes a class's colour.
    "partial_walk": OKABE_ITO["blue"],
    "multiple_people": OKABE_ITO["reddish_purple"],
    "standing_still": OKABE_ITO["sky_blue"],
    "wrong_direction": OKABE_ITO["yellow"],
    "too_few_cycles": OKABE_ITO["black"],
    "poor_view": "#8C6D31",  # dark ochre: Okabe–Ito has eight colours, this ninth stays apart from them
}

# Series without a meaning (metric lines, desks) take these in order: first the colours no class or band
# uses, then the rest; yellow is left out (too light for a line on white).
SERIES: tuple[str, ...] = (
    OKABE_ITO["blue"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["sky_blue"],
    OKABE_ITO["black"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["orange"],
    OKABE_ITO["vermillion"],
)


def colour_for(name: str, index: int) -> str:
    """The colour of a series: its meaning's colour when it has one, else the index-th series colour."""
    return MEANING.get(name, SERIES[index % len(SERIES)])


def css() -> str:
    """CSS custom properties and classes for the meanings (served as /palette.css)."""
    lines = [":root {", *(f"  --{name}: {colour};" for name, colour in MEANING.items()), "}"]
    for name in MEANING:
        lines.append(f".swatch.{name}, .pill.{name} {{ background: var(--{name}); color: #fff; }}")
    lines.append(".pill.neutral, .pill.moderate, .pill.warning, .swatch.neutral { color: #111; }")
    return "\n".join(lines) + "\n"
