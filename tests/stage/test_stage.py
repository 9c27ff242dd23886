"""The stage drawn headless and checked by its pixels."""

from __future__ import annotations

import pygame
import pytest
from conftest import ROOT  # noqa: F401  (sets SDL's dummy driver)

from performance.show.look import Look
from performance.show.schema import ConfigError, Table
from performance.stage.draw import StageRenderer
from performance.stage.view import STREAM_KEEP_CHARS, StageState

W, H = 640, 360


def scene(layout: str, models=("m",), **look) -> dict:
    return {"t": 0.0, "event": "scene", "n": 1, "name": "s", "layout": layout,
            "look": Look(**{"size": 40, "margin": 0.08, **look}).to_dict(),
            "columns": [{"model": m} for m in models], "caption": False}


def poem(state: StageState, n: int, text: str, t: float = 0.0, column: int = 0) -> None:
    state.apply({"t": t, "event": "poem_start", "n": n, "model": "m", "seed": 1, "column": column, "temperature": 0.7})
    for word in text.split(" "):
        state.apply({"t": t, "event": "token", "poem": n, "text": word + " ", "temperature": 0.7, "p": 0.5, "column": column})


def draw(state: StageState, t: float = 1.0) -> pygame.Surface:
    surf = pygame.Surface((W, H))
    StageRenderer((W, H)).draw(surf, state.frame(t))
    return surf


def lit(surf: pygame.Surface, rect: pygame.Rect) -> int:
    """Pixels clearly brighter than the background inside rect."""
    arr = pygame.surfarray.pixels3d(surf)
    region = arr[rect.left:rect.right, rect.top:rect.bottom]
    return int((region.sum(axis=2) > 200).sum())


def test_reader_text_in_the_middle_not_in_the_margins():
    s = StageState()
    s.apply(scene("reader"))
    poem(s, 1, "the grey sea\nwalks slowly\nover old light")
    surf = draw(s)
    assert lit(surf, pygame.Rect(int(W * 0.08), int(H * 0.2), int(W * 0.84), int(H * 0.6))) > 300
    assert lit(surf, pygame.Rect(0, 0, int(W * 0.07), H)) == 0  # left margin
    assert lit(surf, pygame.Rect(0, 0, W, int(H * 0.07))) == 0  # top margin


def test_stream_newest_line_at_the_bottom_when_full():
    s = StageState()
    s.apply(scene("stream", size=40))
    for n in range(1, 30):
        poem(s, n, f"line number {n}\n")
    surf = draw(s)
    bottom = pygame.Rect(0, int(H * 0.6), W, int(H * 0.32))
    top = pygame.Rect(0, int(H * 0.08), W, int(H * 0.3))
    assert lit(surf, bottom) > 100 and lit(surf, top) > 100  # full page, scrolled


def test_panic_fades_to_black_and_blackout_is_instant_and_resume_returns():
    s = StageState()
    s.apply(scene("reader"))
    poem(s, 1, "words on the wall")
    s.apply({"t": 10.0, "event": "panic", "fade_s": 2.0})
    whole = pygame.Rect(0, 0, W, H)
    mid = lit(draw(s, 11.0), whole)
    assert 0 < mid < lit(draw(s, 10.0), whole)
    black = draw(s, 12.5)
    assert pygame.transform.average_color(black)[:3] == (0, 0, 0)
    s.apply({"t": 13.0, "event": "resume"})
    assert lit(draw(s, 14.0), whole) > 100
    s.apply({"t": 15.0, "event": "blackout"})
    assert pygame.transform.average_color(draw(s, 15.0))[:3] == (0, 0, 0)


def test_columns_side_by_side():
    s = StageState()
    s.apply(scene("columns", models=("a", "b", "c"), size=30))
    for i in range(3):
        poem(s, i + 1, f"column {i} speaks here", column=i)
    surf = draw(s)
    third = W // 3
    for i in range(3):
        assert lit(surf, pygame.Rect(i * third + 10, int(H * 0.15), third - 20, int(H * 0.6))) > 100, i


def test_flick_replaces_the_previous_poem_when_the_new_one_appears():
    s = StageState()
    s.apply(scene("flick"))
    poem(s, 1, "first poem of many words")
    s.apply({"t": 1.0, "event": "poem_start", "n": 2, "model": "m", "seed": 2, "column": 0, "temperature": 0.7})
    assert [p.n for p in s.frame(1.0).columns[0].poems] == [1]  # still writing: the old poem stays
    s.apply({"t": 1.2, "event": "token", "poem": 2, "text": "second", "temperature": 0.7, "p": 0.5, "column": 0})
    assert [p.n for p in s.frame(1.2).columns[0].poems] == [2]


def test_countdown_visible_during_a_pause_only():
    s = StageState()
    s.apply(scene("reader", countdown=True))
    poem(s, 1, "a")
    s.apply({"t": 5.0, "event": "pause", "seconds": 20, "until": 25.0})
    area = pygame.Rect(0, int(H * 0.8), W, int(H * 0.2))
    assert lit(draw(s, 6.0), area) > 20
    assert s.frame(6.0).countdown == pytest.approx(19.0)
    assert lit(draw(s, 26.0), area) == 0


def test_long_poem_shrinks_inside_the_margins():
    s = StageState()
    s.apply(scene("reader", size=80, overflow="shrink"))
    poem(s, 1, "\n".join(["a long line of many words that must wrap somewhere"] * 30))
    surf = draw(s)
    assert lit(surf, pygame.Rect(0, 0, W, int(H * 0.075))) == 0
    assert lit(surf, pygame.Rect(0, int(H * 0.93), W, int(H * 0.07))) == 0
    assert lit(surf, pygame.Rect(0, 0, W, H)) > 500


def test_fallback_glyphs_render():
    s = StageState()
    s.apply(scene("reader", size=60))
    poem(s, 1, "’ — æ é ü ẞ ŋ")
    assert lit(draw(s), pygame.Rect(0, 0, W, H)) > 200


def test_spoken_line_is_highlighted():
    s = StageState()
    s.apply(scene("reader", highlight="#ff0000", color="#ffffff"))
    poem(s, 1, "first line\nsecond line\nthird line")
    s.apply({"t": 1.0, "event": "speech", "poem": 1, "line": 1, "start": 2.0, "end": 3.0})
    arr = pygame.surfarray.pixels3d(draw(s, 2.5))
    red = ((arr[:, :, 0] > 150) & (arr[:, :, 1] < 60)).sum()
    assert red > 50
    arr = pygame.surfarray.pixels3d(draw(s, 3.5))
    assert ((arr[:, :, 0] > 150) & (arr[:, :, 1] < 60)).sum() == 0


def test_memory_stays_bounded():
    s = StageState()
    s.apply(scene("stream"))
    for n in range(1, 10001):
        poem(s, n, "some words for the stream\n")
    assert s.columns[0].chars <= STREAM_KEEP_CHARS + 40
    assert len(s.speech) <= 64


def test_look_rejects_a_bad_colour_in_one_line():
    with pytest.raises(ConfigError) as e:
        Look.from_table(Table({"color": "red"}, "scenes/x.toml", "look"))
    assert "scenes/x.toml" in str(e.value) and "look.color" in str(e.value) and "\n" not in str(e.value)
