"""Cell colours for scenes: a palette that keeps neighbours apart, and colours as users write them."""

from __future__ import annotations

import colorsys

from mesh_export.errors import InvalidArgumentError

__all__ = ["palette", "parse_color"]

# Sasha Trubetskoy's 20 distinct colours (white and black left out: a scene's background and
# its edges), in the order that keeps the first few most unlike each other.
_DISTINCT = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
             "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000",
             "#ffd8b1", "#000075", "#a9a9a9", "#ffe119")


def palette(count: int) -> list[tuple[int, int, int, int]]:
    """``count`` RGBA colours: the 20 distinct ones first, then hues a golden angle apart at
    alternating lightness (so that two cells far down the list still differ)."""
    colors = [parse_color(c) for c in _DISTINCT[:count]]
    for k in range(count - len(colors)):
        hue = (k * 0.618033988749895) % 1.0
        light = (0.45, 0.65, 0.3)[k % 3]
        r, g, b = colorsys.hls_to_rgb(hue, light, 0.8)
        colors.append((round(r * 255), round(g * 255), round(b * 255), 255))
    return colors


def parse_color(text) -> tuple[int, int, int, int]:
    """``#rrggbb``, ``#rrggbbaa``, ``rrggbb`` or ``r,g,b[,a]`` (0-255) -> RGBA."""
    value = str(text).strip()
    hexa = value.lstrip("#")
    if len(hexa) in (6, 8) and all(c in "0123456789abcdefABCDEF" for c in hexa):
        parts = [int(hexa[i : i + 2], 16) for i in range(0, len(hexa), 2)]
    else:
        try:
            parts = [int(round(float(p))) for p in value.replace(";", ",").split(",")]
        except ValueError:
            parts = []
        if len(parts) not in (3, 4) or not all(0 <= p <= 255 for p in parts):
            raise InvalidArgumentError(f"a colour is #rrggbb or r,g,b (0-255), not {value!r}")
    return tuple(parts + [255] * (4 - len(parts)))  # type: ignore[return-value]
