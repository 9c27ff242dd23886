"""Fold the event log into what is on screen. Used live and by the offline renderer, so a session
re-renders frame for frame from its transcript.

`StageState.apply(event)` takes every event in order; `frame(t)` returns an immutable StageView in
which everything that moves with time (fades, countdown, the spoken-line highlight) is a pure
function of t. Memory is bounded: a stream keeps only its newest text.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from performance.stage.look import Look

STREAM_KEEP_CHARS = 6000  # the stream layout's memory of past poems
RESUME_FADE_S = 0.4


@dataclass(frozen=True, slots=True)
class PoemText:
    n: int
    text: str


@dataclass(frozen=True, slots=True)
class ColumnView:
    title: str
    poems: tuple[PoemText, ...]
    highlight: tuple[int, int] | None  # (poem n, non-blank line index) being spoken
    poem_started: float  # engine time the newest poem began (for fade-in)


@dataclass(frozen=True, slots=True)
class StageView:
    layout: str
    look: Look
    columns: tuple[ColumnView, ...]
    caption: str | None
    countdown: float | None  # seconds left in a timed pause
    brightness: float  # 0 = black, 1 = full
    version: int  # changes whenever an event changed what is shown


class _Column:
    __slots__ = ("title", "poems", "chars", "model", "seed", "temperature", "started", "replace_on_token")

    def __init__(self, title: str) -> None:
        self.title = title
        self.poems: deque[list] = deque()  # [n, text]
        self.chars = 0
        self.model = title
        self.seed = 0
        self.temperature = 0.0
        self.started = 0.0
        self.replace_on_token = False


class StageState:
    """The reducer. Not thread-safe: one owner (the frame loop, or the renderer)."""

    def __init__(self) -> None:
        self.layout = "stream"
        self.look = Look()
        self.columns: list[_Column] = [_Column("")]
        self.caption_on = False
        self.pause_until: float | None = None
        self.speech: deque[tuple[int, int, float, float]] = deque(maxlen=64)
        self.fade: tuple[str, float, float] | None = None  # (kind, start t, seconds)
        self.version = 0
        self.size = (1920, 1080)

    def apply(self, ev: dict) -> None:
        kind = ev.get("event")
        t = float(ev.get("t", 0.0))
        self.version += 1
        if kind == "session_start":
            st = ev.get("stage") or {}
            self.size = (int(st.get("width", 1920)), int(st.get("height", 1080)))
        elif kind == "scene":
            self.layout = ev.get("layout", "stream")
            self.look = Look.from_dict(ev.get("look"))
            self.caption_on = bool(ev.get("caption", self.look.caption))
            cols = ev.get("columns") or [{"model": ""}]
            self.columns = [_Column(c.get("model", "")) for c in cols]
            self.pause_until = None
            self.speech.clear()
        elif kind == "poem_start":
            col = self._col(ev)
            # a poem replaces the last when its first words appear, not before: no blank stage
            # while a flick poem is still being written
            col.replace_on_token = self.layout != "stream"
            if self.layout == "stream":
                col.poems.append([ev["n"], ""])
            col.model, col.seed = ev.get("model", col.model), ev.get("seed", 0)
            col.temperature = ev.get("temperature", col.temperature)
            col.started = t
            self.pause_until = None
        elif kind == "token":
            col = self._col(ev)
            if col.replace_on_token and (not col.poems or col.poems[-1][0] != ev.get("poem")):
                col.poems.clear()
                col.chars = 0
                col.replace_on_token = False
            if not col.poems or col.poems[-1][0] != ev.get("poem"):
                col.poems.append([ev.get("poem"), ""])
            col.poems[-1][1] += ev["text"]
            col.chars += len(ev["text"])
            col.temperature = ev.get("temperature", col.temperature)
            while col.chars > STREAM_KEEP_CHARS and len(col.poems) > 1:
                col.chars -= len(col.poems.popleft()[1])
            if col.chars > STREAM_KEEP_CHARS:  # one huge poem: keep its tail
                cut = col.chars - STREAM_KEEP_CHARS
                col.poems[0][1] = col.poems[0][1][cut:]
                col.chars -= cut
        elif kind == "pause":
            self.pause_until = float(ev.get("until", t + float(ev.get("seconds", 0))))
        elif kind == "speech":
            self.speech.append((int(ev["poem"]), int(ev["line"]), float(ev["start"]), float(ev["end"])))
        elif kind == "caption":
            self.caption_on = bool(ev.get("on"))
        elif kind == "panic":
            self.fade = ("out", t, float(ev.get("fade_s", 2.0)))
        elif kind == "blackout":
            self.fade = ("out", t, 0.0)
        elif kind == "resume":
            self.fade = ("in", t, RESUME_FADE_S)
        else:
            self.version -= 1  # nothing visible changed

    def _col(self, ev: dict) -> _Column:
        i = int(ev.get("column", 0))
        while i >= len(self.columns):
            self.columns.append(_Column(""))
        return self.columns[i]

    def brightness(self, t: float) -> float:
        if self.fade is None:
            return 1.0
        kind, t0, secs = self.fade
        frac = 1.0 if secs <= 0 else min(1.0, max(0.0, (t - t0) / secs))
        return 1.0 - frac if kind == "out" else frac

    def frame(self, t: float) -> StageView:
        highlight = None
        for poem, line, start, end in reversed(self.speech):
            if start <= t < end:
                highlight = (poem, line)
                break
        cols = tuple(
            ColumnView(c.title, tuple(PoemText(n, text) for n, text in c.poems), highlight, c.started)
            for c in self.columns
        )
        caption = None
        if self.caption_on and self.columns and self.layout != "columns":
            c = self.columns[0]
            caption = f"{c.model} · temperature {c.temperature:.2f} · seed {c.seed}"
        countdown = None
        if self.pause_until is not None and t < self.pause_until:
            countdown = self.pause_until - t
        return StageView(self.layout, self.look, cols, caption, countdown, self.brightness(t), self.version)
