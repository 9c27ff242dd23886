"""The co-writing strip drawn headless (dummy driver) and checked by its pixels: the candidates
appear numbered in the bottom margin, the bar shrinks with the time left, and the strip goes when
the choice is made; in the reader and flick layouts alike."""

from __future__ import annotations

import pygame
import pytest
from conftest import ROOT  # noqa: F401  (sets SDL's dummy driver)

from performance.show.look import Look, colour, mix
from performance.stage.draw import StageRenderer
from performance.stage.view import StageState

W, H = 640, 360


def state(layout: str) -> StageState:
    s = StageState()
    s.apply({"t": 0.0, "event": "scene", "n": 1, "name": "s", "layout": layout, "look": Look(size=40).to_dict(),
             "columns": [{"model": "m"}], "caption": False})
    s.apply({"t": 0.0, "event": "poem_start", "n": 1, "model": "m", "seed": 1, "column": 0, "temperature": 0.7})
    for word in "the sea is a grey".split():
        s.apply({"t": 0.0, "event": "token", "poem": 1, "text": word + " ", "temperature": 0.7, "p": 0.5, "column": 0})
    return s


def offer(s: StageState) -> None:
    s.apply({"t": 1.0, "event": "choice_offer", "poem": 1, "column": 0, "until": 5.0, "every": "word",
             "words": [["mirror", 0.3], ["light", 0.2], ["stone", 0.1], ["wind", 0.05], ["field", 0.01]]})


def draw(s: StageState, t: float) -> pygame.Surface:
    surf = pygame.Surface((W, H))
    StageRenderer((W, H)).draw(surf, s.frame(t))
    return surf


def count(surf: pygame.Surface, rect: pygame.Rect, rgb: tuple[int, int, int], tol: int = 40) -> int:
    arr = pygame.surfarray.pixels3d(surf)[rect.left:rect.right, rect.top:rect.bottom].astype(int)
    return int((abs(arr - rgb).sum(axis=2) < tol).sum())


@pytest.mark.parametrize("layout", ["reader", "flick"])
def test_the_candidates_show_numbered_with_a_shrinking_bar_and_go_with_the_choice(layout):
    s = state(layout)
    bottom = pygame.Rect(0, int(H * 0.86), W, H - int(H * 0.86))
    before = draw(s, 1.0)
    highlight = colour(Look().highlight)
    assert count(before, bottom, highlight) == 0  # nothing offered: no numbers in the margin
    offer(s)
    view = s.frame(1.0)
    assert view.offer is not None and view.offer.words == ("mirror", "light", "stone", "wind", "field")
    shown = draw(s, 1.0)
    assert count(shown, bottom, highlight) > 20  # the five numbers (and the full bar) in the highlight colour
    text_rgb = colour(Look().color)
    assert count(shown, bottom, text_rgb, tol=60) > 100  # the words themselves
    bar = mix(highlight, mix(colour(Look().background), text_rgb, 0.10), 0.3)  # the bar on the strip's panel

    def bar_width(surf: pygame.Surface) -> int:
        arr = pygame.surfarray.pixels3d(surf)
        rows = [sum(1 for x in range(W) if abs(arr[x, y].astype(int) - bar).sum() < 12) for y in range(bottom.top, H)]
        return max(rows)

    full = bar_width(shown)
    part = bar_width(draw(s, 4.0))  # a quarter of the wait left: a quarter of the bar
    assert full > 0.9 * W and part == pytest.approx(W / 4, abs=W * 0.05)
    s.apply({"t": 2.0, "event": "choice", "poem": 1, "column": 0, "n": 2, "word": "light", "by": "osc"})
    s.apply({"t": 2.0, "event": "token", "poem": 1, "text": "light ", "temperature": 0.7, "p": 0.2, "column": 0,
             "chosen": "osc"})
    assert s.frame(2.0).offer is None
    assert count(draw(s, 2.0), bottom, highlight) == 0  # the strip is gone; the chosen word is in the poem
