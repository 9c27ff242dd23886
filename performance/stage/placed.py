"""What a layout places on the stage: text runs and rules, in pixels (drawn by draw.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Placed:
    """One line of text at its pixel position (top-left of the line box)."""

    text: str
    font: str  # font file (fallback runs are resolved when rendering)
    size: int  # pixels
    rgb: tuple[int, int, int]
    x: int
    y: int
    alpha: int = 255
    bg: tuple[int, int, int] | None = None  # drawn on this colour instead of the stage's (x-ray units)


@dataclass(frozen=True, slots=True)
class Rule:
    """A thin horizontal line (under a column's header)."""

    x: int
    y: int
    width: int
    height: int
    rgb: tuple[int, int, int]
