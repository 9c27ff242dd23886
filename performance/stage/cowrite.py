"""Co-writing on stage: the candidate words for the next word, numbered as the keys, pads and
remote buttons that pick them, with a bar that shrinks to the moment the model's own word stands.

The strip sits in the bottom margin (over the caption while it shows), on a panel of its own, so
the poem never moves when a choice opens or closes; every layout gets the same strip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from performance.show.look import colour, mix
from performance.stage.fonts import MIN_SIZE
from performance.stage.placed import Placed, Rule

STRIP_SIZE = 0.8  # the candidates' type, as a share of the poem's
SMALL_TEXT_MIN = 0.032  # never under this share of the screen height: read from the stage, at a glance
GAP_EM = 1.6  # between two candidates


@dataclass(frozen=True, slots=True)
class OfferView:
    """Candidates on stage: the words (as shown), seconds left and the whole wait."""

    words: tuple[str, ...]
    left: float
    wait: float


def place_offer(layouter: Any, view: Any, base: int, margins: tuple[int, int]) -> list[Placed | Rule]:
    """The strip of candidates, in pixels (layouter: stage.layouts.Layouter; view: StageView)."""
    offer: OfferView | None = getattr(view, "offer", None)
    if offer is None or not offer.words:
        return []
    look = view.look
    fonts = layouter.fonts
    w, h = layouter.size
    mx, my = margins
    path = fonts.path(look.font_path())
    size = max(MIN_SIZE, int(base * STRIP_SIZE), int(math.ceil(h * SMALL_TEXT_MIN)))
    labels = [(f"{i}", f" {word}") for i, word in enumerate(offer.words, 1)]

    def width(sz: int) -> int:
        gap = int(sz * GAP_EM)
        return sum(fonts.width(path, sz, a) + fonts.width(path, sz, b) for a, b in labels) + gap * (len(labels) - 1)

    while size > MIN_SIZE and width(size) > w - 2 * mx:  # long words: smaller type, never off screen
        size -= 1
    lh = fonts.line_height(path, size)
    fg, bg = colour(look.color), colour(look.background)
    panel_bg = mix(bg, fg, 0.10)
    ph = int(lh * 1.5)
    centre = h - max(my, ph) // 2  # the bottom margin's middle (or the panel's own height)
    top = min(h - ph, centre - ph // 2)
    out: list[Placed | Rule] = [Rule(0, top, w, ph, panel_bg)]
    x = (w - width(size)) // 2
    y = top + (ph - lh) // 2
    number_rgb = colour(look.highlight)
    for num, word in labels:
        out.append(Placed(num, path, size, number_rgb, x, y, bg=panel_bg))
        x += fonts.width(path, size, num)
        out.append(Placed(word, path, size, fg, x, y, bg=panel_bg))
        x += fonts.width(path, size, word) + int(size * GAP_EM)
    frac = 0.0 if offer.wait <= 0 else min(1.0, max(0.0, offer.left / offer.wait))
    bar = max(2, int(round(ph * 0.08)))
    out.append(Rule(0, top + ph - bar, int(round(w * frac)), bar, mix(number_rgb, panel_bg, 0.3)))
    return out
