"""The stage drawn headless (real pygame, SDL dummy driver) and checked by its pixels."""

from __future__ import annotations

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # noqa: E402
import pytest  # noqa: E402

from performance.show.look import Look, resolve  # noqa: E402
from performance.stage.draw import StageRenderer  # noqa: E402
from performance.stage.fonts import FALLBACK_FONT  # noqa: E402
from performance.stage.layouts import Placed, Rule  # noqa: E402
from performance.stage.view import StageState  # noqa: E402

W, H = 640, 360
WHOLE = pygame.Rect(0, 0, W, H)
VERSE = "the grey sea walks\nslowly over old light\nand the wind\nwrites on it"


def scene(layout: str, models=("m",), **look) -> dict:
    return {"t": 0.0, "event": "scene", "n": 1, "name": "s", "layout": layout, "look": Look(**look).to_dict(),
            "columns": [{"model": m} for m in models], "caption": False}


def poem(s: StageState, n: int, text: str, t: float = 0.0, column: int = 0, end: bool = True) -> None:
    s.apply({"t": t, "event": "poem_start", "n": n, "model": "m", "seed": 1, "column": column, "temperature": 0.7})
    for word in text.split(" "):
        s.apply({"t": t, "event": "token", "poem": n, "text": word + " ", "temperature": 0.7, "p": 0.5, "column": column})
    if end:
        s.apply({"t": t, "event": "poem_end", "n": n, "column": column})


def draw(s: StageState, t: float = 1.0, renderer: StageRenderer | None = None) -> pygame.Surface:
    surf = pygame.Surface((W, H))
    (renderer or StageRenderer((W, H))).draw(surf, s.frame(t))
    return surf


def lit(surf: pygame.Surface, rect: pygame.Rect | tuple) -> int:
    """Pixels clearly brighter than the (near-black) background inside rect."""
    r = pygame.Rect(rect).clip(surf.get_rect())
    arr = pygame.surfarray.pixels3d(surf)[r.left:r.right, r.top:r.bottom]
    return int((arr.astype(int).sum(axis=2) > 150).sum())


def max_level(surf: pygame.Surface) -> int:
    return int(pygame.surfarray.pixels3d(surf).max())


def lit_bounds(surf: pygame.Surface) -> pygame.Rect:
    arr = pygame.surfarray.pixels3d(surf).astype(int).sum(axis=2) > 150
    xs, ys = arr.any(axis=1).nonzero()[0], arr.any(axis=0).nonzero()[0]
    return pygame.Rect(xs[0], ys[0], xs[-1] - xs[0] + 1, ys[-1] - ys[0] + 1)


def test_reader_text_in_the_centre_region_none_in_the_margins():
    s = StageState()
    s.apply(scene("reader", margin=0.1))
    poem(s, 1, VERSE)
    surf = draw(s)
    assert lit(surf, (W * 0.1, H * 0.1, W * 0.8, H * 0.8)) > 400
    for margin in ((0, 0, W * 0.1, H), (W * 0.9, 0, W * 0.1, H), (0, 0, W, H * 0.1), (0, H * 0.9, W, H * 0.1)):
        assert lit(surf, margin) == 0, margin


def test_stream_newest_line_at_the_bottom():
    def stream(last_word: str) -> pygame.Surface:
        s = StageState()
        s.apply(scene("stream", size=40, margin=0.05))
        for n in range(1, 40):
            poem(s, n, f"line number {n}\nand its second line")
        poem(s, 40, f"the newest {last_word}", end=False)
        return draw(s)

    a, b = stream("word"), stream("WORM")
    bounds = lit_bounds(a)
    assert bounds.bottom > H * 0.85 and bounds.top < H * 0.15  # a full page, scrolled like a terminal
    changed_rows = (pygame.surfarray.pixels3d(a) != pygame.surfarray.pixels3d(b)).any(axis=(0, 2)).nonzero()[0]
    assert len(changed_rows) and changed_rows.min() > H * 0.8  # only the newest (bottom) line differs


def test_panic_fades_to_black_blackout_at_once_resume_brings_text_back():
    s = StageState()
    s.apply(scene("reader"))
    poem(s, 1, VERSE)
    r = StageRenderer((W, H))
    full = max_level(draw(s, 9.0, r))
    s.apply({"t": 10.0, "event": "panic", "fade_s": 2.0})
    half = max_level(draw(s, 11.0, r))
    assert full * 0.4 < half < full * 0.6
    assert max_level(draw(s, 12.0, r)) == 0  # every pixel black once fade_s has passed
    assert max_level(draw(s, 30.0, r)) == 0
    s.apply({"t": 31.0, "event": "resume"})
    assert lit(draw(s, 32.0, r), WHOLE) > 300
    s.apply({"t": 40.0, "event": "blackout"})
    assert max_level(draw(s, 40.0, r)) == 0


def test_columns_side_by_side_one_per_model():
    s = StageState()
    s.apply(scene("columns", models=("alpha", "beta", "gamma"), margin=0.05))
    for i in range(3):
        poem(s, i + 1, f"column {i} speaks here\nin its own voice", column=i)
    r = StageRenderer((W, H))
    surf = draw(s, renderer=r)
    third = W // 3
    for i in range(3):
        assert lit(surf, (i * third + 25, H * 0.12, third - 50, H * 0.5)) > 100, i
    placed = r.place(s.frame(1.0))
    headers = [p for p in placed if isinstance(p, Placed) and p.text in ("alpha", "beta", "gamma")]
    assert [p.text for p in headers] == ["alpha", "beta", "gamma"]
    assert headers[0].x < headers[1].x < headers[2].x and len({p.y for p in headers}) == 1
    assert sum(isinstance(p, Rule) for p in placed) == 3
    # no text of one column reaches into the next
    texts = [p for p in placed if isinstance(p, Placed) and p not in headers]
    for p in texts:
        col = next(i for i in range(3) if p.text.startswith(f"column {i}") or p.text == "in its own voice")
        assert p.x < (col + 1) * third or p.text == "in its own voice"


def test_flick_replaces_the_previous_poem():
    s = StageState()
    s.apply(scene("flick", size=60))
    poem(s, 1, "first\nfirst\nfirst\nfirst")  # four lines: lit rows low on the screen
    tall = lit_bounds(draw(s)).height
    poem(s, 2, "second", t=2.0)
    one = lit_bounds(draw(s, 2.0))
    assert one.height < tall / 2  # only the new one-line poem is left


def test_countdown_visible_during_a_pause_and_not_after():
    s = StageState()
    s.apply(scene("reader", countdown=True))
    poem(s, 1, "a short poem")
    s.apply({"t": 5.0, "event": "pause", "seconds": 20, "until": 25.0})
    area = (0, H * 0.85, W, H * 0.15)
    during = draw(s, 6.0)
    assert lit(during, area) > 20
    assert lit(draw(s, 6.0), area) == lit(draw(s, 6.5), area)  # 0:19 both times
    assert lit(draw(s, 26.0), area) == 0
    s.apply(scene("reader", countdown=False))
    poem(s, 2, "another")
    s.apply({"t": 30.0, "event": "pause", "seconds": 20, "until": 50.0})
    assert lit(draw(s, 31.0), area) == 0  # the look can turn it off


@pytest.mark.parametrize("layout", ["reader", "flick", "sentence"])
def test_long_poem_shrinks_and_stays_inside_the_margins(layout):
    w, h = 1280, 720
    s = StageState()
    s.apply(scene(layout, size=80, overflow="shrink", margin=0.08))
    poem(s, 1, "\n".join(["a long line of many words that must wrap somewhere"] * 30))
    r = StageRenderer((w, h))
    surf = pygame.Surface((w, h))
    r.draw(surf, s.frame(1.0))
    box = pygame.Rect(w * 0.08 - 1, h * 0.08 - 1, w * 0.84 + 2, h * 0.84 + 2)
    assert box.contains(lit_bounds(surf))
    assert lit(surf, surf.get_rect()) > 5000
    placed = r.place(s.frame(1.0))
    assert sum(p.text.startswith("a long line") for p in placed) == 30  # every line is there, smaller
    assert max(p.size for p in placed) < 80 * h / 1080


def test_page_overflow_turns_pages_after_the_poem_ends():
    s = StageState()
    s.apply(scene("reader", size=60, overflow="page", page_seconds=5.0))
    poem(s, 1, "\n".join(f"line {i}" for i in range(20)))
    r = StageRenderer((W, H))
    first = [p.text for p in r.place(s.frame(0.5))]
    second = [p.text for p in r.place(s.frame(5.5))]
    assert first[0] == "line 0" and second[0] != "line 0" and not set(first) & set(second)
    pages = [tuple(p.text for p in r.place(s.frame(0.5 + 5 * k))) for k in range(8)]
    shown = {t for page in pages for t in page}
    assert {f"line {i}" for i in range(20)} <= shown  # nothing is cut off: every line gets its page


def test_shrink_that_reaches_the_smallest_size_turns_pages_instead_of_cutting():
    s = StageState()
    s.apply(scene("reader", size=80, overflow="shrink", page_seconds=5.0))
    poem(s, 1, "\n".join(f"line {i}" for i in range(60)))
    r = StageRenderer((W, H))
    shown = {p.text for k in range(10) for p in r.place(s.frame(0.5 + 5 * k))}
    assert {f"line {i}" for i in range(60)} <= shown


def test_fallback_font_draws_what_the_main_font_lacks():
    r = StageRenderer((W, H))
    bg = (5, 5, 5)
    target = pygame.Surface((W, H))
    for font in ("serif", "sans", "mono"):
        path = str(Look(font=font).font_path())
        for ch in "’—æéü":
            surf = r.line(Placed(ch, path, 40, (255, 255, 255), 0, 0), bg, target)
            assert lit(surf, surf.get_rect()) > 10, (font, ch)
    serif = str(Look(font="serif").font_path())
    assert r.fonts.runs(serif, "shalom שלום") == (("shalom ", False), ("שלום", True))
    fell_back = r.line(Placed("שלום", serif, 40, (255, 255, 255), 0, 0), bg, target)
    direct = r.fonts.get(FALLBACK_FONT, 40).render("שלום", True, (255, 255, 255), bg)
    tofu = r.fonts.get(serif, 40).render("שלום", True, (255, 255, 255), bg)
    assert pygame.image.tobytes(fell_back, "RGB") == pygame.image.tobytes(direct.convert(target), "RGB")
    assert pygame.image.tobytes(fell_back, "RGB") != pygame.image.tobytes(tofu.convert(target), "RGB")


def test_fade_in_shows_in_the_pixels():
    s = StageState()
    s.apply(scene("reader", fade_in=2.0, color="#ffffff", background="#000000"))
    poem(s, 1, VERSE, t=0.0)
    r = StageRenderer((W, H))
    levels = [max_level(draw(s, t, r)) for t in (0.0, 1.0, 2.0)]
    assert levels[0] == 0 and 100 < levels[1] < 160 and levels[2] == 255


def test_spoken_line_is_highlighted():
    s = StageState()
    s.apply(scene("reader", highlight="#ff0000", color="#ffffff"))
    poem(s, 1, "first line\n\nsecond line\nthird line")
    s.apply({"t": 1.0, "event": "speech", "poem": 1, "line": 1, "start": 2.0, "end": 3.0})
    r = StageRenderer((W, H))
    red = [p for p in r.place(s.frame(2.5)) if p.rgb == (255, 0, 0)]
    assert [p.text for p in red] == ["second line"]  # line 1 = the second non-blank line
    arr = pygame.surfarray.pixels3d(draw(s, 3.5, r))
    assert ((arr[:, :, 0] > 150) & (arr[:, :, 1] < 60)).sum() == 0


def test_caption_and_per_layout_defaults_scale_with_height():
    s = StageState()
    s.apply(scene("sentence"))
    poem(s, 1, "one sentence, centred")
    s.apply({"t": 0.5, "event": "caption", "on": True})
    r = StageRenderer((1920, 1080))
    placed = r.place(s.frame(1.0))
    big, cap = placed[0], placed[-1]
    assert big.size == resolve(Look(), "sentence").size and cap.text.startswith("m · temperature")
    assert abs((big.x + r.fonts.width(big.font, big.size, big.text) / 2) - 960) <= 1  # centred
    small = StageRenderer((960, 540)).place(s.frame(1.0))
    assert small[0].size == big.size // 2


def test_line_cache_is_bounded_by_bytes():
    s = StageState()
    s.apply(scene("stream"))
    r = StageRenderer((W, H))
    surf = pygame.Surface((W, H))
    for n in range(1, 400):
        poem(s, n, f"poem number {n} has a line of its own")
        r.draw(surf, s.frame(float(n)))
    assert r._lines.bytes <= r._lines.max_bytes and len(r._lines) <= r._lines.cap
    assert len(r.layouter._wraps) <= r.layouter._wraps.cap
