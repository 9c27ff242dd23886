"""The reducer: events folded into what is on screen, time-dependent parts as exact functions of t."""

from __future__ import annotations

import os
import sys
import tracemalloc

os.environ["SDL_VIDEODRIVER"] = "dummy"

import pytest  # noqa: E402

from performance.show.look import Look  # noqa: E402
from performance.stage.view import MAX_COLUMNS, SPEECH_KEEP, STREAM_KEEP_CHARS, StageState  # noqa: E402


def scene(layout: str, models=("m",), t: float = 0.0, **look) -> dict:
    return {"t": t, "event": "scene", "n": 1, "name": "s", "layout": layout, "look": Look(**look).to_dict(),
            "columns": [{"model": m} for m in models], "caption": False}


def poem(s: StageState, n: int, text: str, t: float = 0.0, column: int = 0, dt: float = 0.0, end: bool = True) -> float:
    s.apply({"t": t, "event": "poem_start", "n": n, "model": f"m{column}", "seed": 100 + n, "column": column,
             "temperature": 0.5})
    for word in text.split(" "):
        s.apply({"t": t, "event": "token", "poem": n, "text": word + " ", "temperature": 0.75, "p": 0.5, "column": column})
        t += dt
    if end:
        s.apply({"t": t, "event": "poem_end", "n": n, "column": column})
    return t


def texts(s: StageState, t: float, column: int = 0) -> list[tuple[int, str]]:
    return [(p.n, p.text) for p in s.frame(t).columns[column].poems]


def test_stream_keeps_poems_in_order_and_flick_replaces_when_words_appear():
    s = StageState()
    s.apply(scene("stream"))
    poem(s, 1, "one")
    poem(s, 2, "two")
    assert texts(s, 1.0) == [(1, "one "), (2, "two ")]
    s.apply(scene("flick"))
    poem(s, 3, "three")
    s.apply({"t": 1.0, "event": "poem_start", "n": 4, "model": "m", "seed": 1, "column": 0, "temperature": 0.5})
    assert texts(s, 1.0) == [(3, "three ")]  # no blank stage while the next is being written
    s.apply({"t": 1.5, "event": "token", "poem": 4, "text": "four", "temperature": 0.5, "p": 0.5, "column": 0})
    assert texts(s, 1.5) == [(4, "four")]


def test_fade_out_then_fade_in_are_exact_functions_of_t():
    s = StageState()
    s.apply(scene("reader", fade_in=2.0, fade_out=1.0))
    poem(s, 1, "old words", t=0.0)
    assert s.frame(1.0).columns[0].poems[0].alpha == pytest.approx(round(0.5 * 255) / 255)
    assert s.frame(2.0).columns[0].poems[0].alpha == 1.0
    s.apply({"t": 10.0, "event": "poem_start", "n": 2, "model": "m", "seed": 2, "column": 0, "temperature": 0.5})
    s.apply({"t": 10.0, "event": "token", "poem": 2, "text": "new", "temperature": 0.5, "p": 0.5, "column": 0})
    at = {t: s.frame(t).columns[0].poems for t in (10.0, 10.25, 10.999, 11.0, 12.0, 13.0)}
    assert [(p.n, p.alpha) for p in at[10.0]] == [(1, 1.0)]
    assert [(p.n, p.alpha) for p in at[10.25]] == [(1, round(0.75 * 255) / 255)]
    assert at[10.999][0].n == 1
    assert [(p.n, p.alpha) for p in at[11.0]] == [(2, 0.0)]  # the new poem fades in after the old has gone
    assert [(p.n, p.alpha) for p in at[12.0]] == [(2, round(0.5 * 255) / 255)]
    assert [(p.n, p.alpha) for p in at[13.0]] == [(2, 1.0)]
    # the version moves with the fade, so a loop that skips unchanged frames still redraws it
    assert len({s.frame(t).version for t in (10.25, 10.5, 11.5, 12.5)}) == 4
    assert s.frame(13.0).version == s.frame(20.0).version


def test_streams_do_not_fade():
    s = StageState()
    s.apply(scene("stream", fade_in=5.0))
    poem(s, 1, "typed at once")
    assert s.frame(0.1).columns[0].poems[0].alpha == 1.0


def test_countdown_pause_and_page_clock():
    s = StageState()
    s.apply(scene("reader", overflow="page", page_seconds=4.0))
    end = poem(s, 1, "a b c", t=0.0, dt=1.0)
    assert end == 3.0
    s.apply({"t": 3.0, "event": "pause", "seconds": 20, "until": 23.0, "column": 0})
    v = s.frame(5.5)
    assert v.countdown == pytest.approx(17.5)
    assert v.columns[0].page_clock == pytest.approx(2.5)
    assert s.frame(23.0).countdown is None
    assert s.frame(7.0).version != s.frame(6.9).version  # a page turn at 4 s after the end
    poem(s, 2, "next", t=23.0, end=False)
    assert s.frame(23.5).columns[0].page_clock is None  # writing again: no page turns


def test_panic_blackout_resume_brightness():
    s = StageState()
    s.apply(scene("flick"))
    assert s.frame(0.0).brightness == 1.0
    s.apply({"t": 10.0, "event": "panic", "fade_s": 4.0})
    assert [s.frame(t).brightness for t in (10.0, 11.0, 14.0, 99.0)] == [1.0, 0.75, 0.0, 0.0]
    s.apply({"t": 100.0, "event": "resume"})
    assert s.frame(100.2).brightness == pytest.approx(0.5)
    assert s.frame(100.4).brightness == 1.0
    s.apply({"t": 101.0, "event": "blackout"})
    assert s.frame(101.0).brightness == 0.0


def test_highlight_and_caption():
    s = StageState()
    s.apply(scene("sentence"))
    poem(s, 7, "a line")
    s.apply({"t": 1.0, "event": "speech", "poem": 7, "line": 0, "start": 2.0, "end": 3.0})
    assert s.frame(1.9).columns[0].highlight is None
    assert s.frame(2.0).columns[0].highlight == (7, 0)
    assert s.frame(3.0).columns[0].highlight is None
    assert s.frame(1.0).caption is None
    s.apply({"t": 4.0, "event": "caption", "on": True})
    assert s.frame(4.0).caption == "m0 · temperature 0.75 · seed 107"


def test_columns_keep_their_own_poems_and_models():
    s = StageState()
    s.apply(scene("columns", models=("a", "b", "c")))
    for i in range(3):
        poem(s, i + 1, f"column {i}", column=i)
    v = s.frame(1.0)
    assert [c.title for c in v.columns] == ["a", "b", "c"]
    assert [texts(s, 1.0, i) for i in range(3)] == [[(1, "column 0 ")], [(2, "column 1 ")], [(3, "column 2 ")]]


def test_malformed_events_are_dropped_and_the_show_goes_on():
    s = StageState()
    s.apply(scene("stream"))
    for bad in ({"event": "token"}, {"event": "token", "poem": "x", "text": "a"}, {"event": "speech", "poem": 1},
                {"event": "poem_start", "n": 1, "column": 10**9}, {"event": "pause", "until": "soon"},
                {"t": "late", "event": "panic"}, {"event": "keep", "poem": 3}, {"event": "session_end"},
                {"event": "scene", "layout": "spiral", "look": {"size": -1}}):
        s.apply(bad)
    assert len(s.columns) <= MAX_COLUMNS
    assert s.frame(0.0).layout == "stream"
    poem(s, 1, "still here")
    assert texts(s, 0.0) == [(1, "still here ")]


@pytest.mark.parametrize("layout", ["stream", "flick", "columns"])
def test_memory_stays_bounded_after_10000_poems(layout):
    s = StageState()
    s.apply(scene(layout, models=("a", "b")))
    tracemalloc.start()
    for n in range(1, 10_001):
        poem(s, n, "some words for the stream\nand a second line", t=float(n), column=n % 2)
        s.apply({"t": float(n), "event": "speech", "poem": n, "line": 0, "start": n, "end": n + 1})
        if n == 1000:
            base = tracemalloc.take_snapshot()
    grown = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(base, "filename"))
    tracemalloc.stop()
    assert grown < 200_000, grown
    for c in s.columns:
        assert c.chars <= STREAM_KEEP_CHARS and sum(len(t) for _, t in c.poems) == c.chars
    assert len(s.speech) == SPEECH_KEEP
    assert sys.getsizeof(s.columns[0].poems) < 10_000


def test_one_runaway_poem_keeps_its_tail():
    s = StageState()
    s.apply(scene("reader"))
    poem(s, 1, " ".join(f"w{i}" for i in range(5000)))
    (n, text), = texts(s, 0.0)
    assert len(text) <= STREAM_KEEP_CHARS and text.endswith("w4999 ")
