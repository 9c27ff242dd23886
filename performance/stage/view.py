"""Fold the event log into what is on screen. Used live and by the offline renderer, so a session
re-renders frame for frame from its transcript, without the model.

`StageState.apply(event)` takes every event in order; `frame(t)` returns an immutable StageView in
which everything that moves with time (poem fades, panic fades, the countdown, page flips, the
spoken-line highlight) is a pure function of t and the events folded so far. Memory is bounded
whatever runs for weeks: each column keeps at most STREAM_KEEP_CHARS of text, the speech log is a
short ring, and a malformed event is logged and dropped, never raised into the frame loop.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

from performance.show.look import LAYOUTS, Look, resolve
from performance.stage.cowrite import OfferView
from performance.stage.xray_state import XraySettings, XrayTrack, XrayView

log = logging.getLogger(__name__)

STREAM_KEEP_CHARS = 6000  # a column's memory of past text (a 1080p stream shows far less)
MAX_COLUMNS = 8  # a bad `column` field must not allocate a million columns
RESUME_FADE_S = 0.4
SPEECH_KEEP = 64
ALPHA_STEPS = 255  # fades are quantised to 8 bits: what a frame can show anyway


@dataclass(frozen=True, slots=True)
class PoemText:
    """One poem as shown: its session-wide number, the text revealed so far, its opacity."""

    n: int
    text: str
    alpha: float = 1.0  # 0..1, from fade_in / fade_out


@dataclass(frozen=True, slots=True)
class ColumnView:
    """One column of text (single-column layouts have one)."""

    title: str  # the model's name (the columns layout draws it as a header)
    poems: tuple[PoemText, ...]  # oldest first; the last one is being written
    highlight: tuple[int, int] | None  # (poem n, index of the non-blank line) being spoken
    poem_started: float  # engine time the newest poem began
    page_clock: float | None = None  # seconds since the newest poem ended (page flips), None while writing
    caption: str | None = None  # model · temperature · seed, when captions are on
    word: int | None = None  # in the highlighted line: the index (line.split()) of the word being spoken


@dataclass(frozen=True, slots=True)
class StageView:
    """Everything the renderer needs for one frame; immutable, so it may cross threads."""

    layout: str
    look: Look  # resolved: the layout's defaults filled in
    columns: tuple[ColumnView, ...]
    caption: str | None  # single-column layouts: model · temperature · seed
    countdown: float | None  # seconds left in a timed pause
    brightness: float  # 0 = black, 1 = full (panic, blackout, resume)
    version: int  # changes whenever the picture changes, apart from the three fields below
    xray: XrayView | None = None  # the x-ray of column 0, when the scene shows it
    offer: OfferView | None = None  # co-writing: the candidates for the next word, while they are offered

    @property
    def key(self) -> tuple:
        """Equal keys draw equal pictures: the loop and the offline renderer may skip a redraw
        (or repeat the last encoded frame) when the key has not changed."""
        return (self.version, round(self.brightness, 3),
                None if self.countdown is None else math.ceil(self.countdown - 1e-9),
                tuple((c.highlight, c.word) for c in self.columns))


class _Column:
    __slots__ = ("title", "poems", "chars", "model", "seed", "temperature", "started", "pending",
                 "shown_at", "outgoing", "replaced_at", "ended_at")

    def __init__(self, title: str) -> None:
        self.title = title
        self.poems: deque[list] = deque()  # [n, text], oldest first
        self.chars = 0
        self.model = title
        self.seed = 0
        self.temperature = 0.0
        self.started = 0.0
        self.pending: int | None = None  # a poem started here whose first words have not appeared
        self.shown_at = 0.0  # when the newest poem became visible (fade_in starts here)
        self.outgoing: tuple[int, str] | None = None  # the replaced poem, while it fades out
        self.replaced_at = 0.0
        self.ended_at: float | None = None

    def caption(self) -> str:
        return f"{self.model} · temperature {self.temperature:.2f} · seed {self.seed}"


class StageState:
    """The reducer. Not thread-safe: one owner (the frame loop, or the offline renderer)."""

    def __init__(self) -> None:
        self.layout = "stream"
        self.look = Look()
        self.columns: list[_Column] = [_Column("")]
        self.caption_on = False
        self.pause_until: float | None = None
        self.speech: deque[tuple[int, int, float, float, tuple]] = deque(maxlen=SPEECH_KEEP)
        self.fade: tuple[str, float, float] | None = None  # (out|in, start t, seconds)
        self.version = 0
        self.size = (1920, 1080)
        self.errors = 0
        self.xray: XrayTrack | None = None
        self.offer: tuple[tuple[str, ...], float, float, int] | None = None  # (words, at, until, poem)

    # ---- folding ------------------------------------------------------------------------------
    def apply(self, ev: dict) -> None:
        """Fold one event in. A malformed event is logged and ignored: the show goes on."""
        try:
            self._apply(ev)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            self.errors += 1
            if self.errors <= 20 or self.errors % 1000 == 0:
                log.warning("stage ignored a malformed event %.200r: %s", ev, e)

    def _apply(self, ev: dict) -> None:
        kind = ev.get("event")
        t = float(ev.get("t", 0.0))
        self.version += 1
        if kind in ("scene", "poem_end", "panic", "blackout") and self.offer is not None:
            if kind != "poem_end" or ev.get("n") == self.offer[3]:
                self.offer = None  # a choice never outlives its poem
        if kind == "session_start":
            st = ev.get("stage") or {}
            self.size = (int(st.get("width", 1920)), int(st.get("height", 1080)))
        elif kind == "scene":
            layout = ev.get("layout", "stream")
            self.layout = layout if layout in LAYOUTS else "stream"
            self.look = Look.from_dict(ev.get("look"))
            self.caption_on = bool(ev.get("caption", self.look.caption))
            cols = ev.get("columns") or [{"model": ""}]
            self.columns = [_Column(str(c.get("model", ""))) for c in cols[:MAX_COLUMNS]]
            self.pause_until = None
            self.speech.clear()
            xs = XraySettings.from_dict(ev.get("xray"))
            self.xray = XrayTrack(xs) if xs is not None else None
        elif kind == "poem_start":
            self._poem_start(t, ev)
        elif kind == "token":
            self._token(t, ev)
            if self.xray is not None and int(ev.get("column", 0)) == 0:
                self.xray.token(ev)
        elif kind == "poem_info":
            col = self._col(ev)
            if col is not None and ev.get("checkpoint"):
                col.model = col.title = str(ev["checkpoint"])
            if self.xray is not None and int(ev.get("column", 0)) == 0:
                self.xray.poem(ev)
        elif kind == "neuron":
            if self.xray is not None:
                self.xray.neuron(int(ev["unit"]))
        elif kind == "poem_end":
            col = self._col(ev)
            if col is not None and col.poems and col.poems[-1][0] == ev.get("n"):
                col.ended_at = t
        elif kind == "pause":
            self.pause_until = float(ev.get("until", t + float(ev.get("seconds", 0))))
        elif kind == "speech":
            words = tuple((int(k), float(a), float(b)) for k, a, b in ev.get("words") or ())
            self.speech.append((int(ev["poem"]), int(ev["line"]), float(ev["start"]), float(ev["end"]), words))
        elif kind == "caption":
            self.caption_on = bool(ev.get("on"))
        elif kind == "panic":
            self.fade = ("out", t, max(0.0, float(ev.get("fade_s", 2.0))))
        elif kind == "blackout":
            self.fade = ("out", t, 0.0)
        elif kind == "resume":
            self.fade = ("in", t, RESUME_FADE_S) if self.fade is not None else None
        elif kind in ("choice_offer", "choice"):
            self._choice(t, ev)
        else:  # standby, command, keep, session_end, ...: nothing visible changes
            self.version -= 1

    def _choice(self, t: float, ev: dict) -> None:
        """Co-writing: candidates offered (column 0 only), or the choice made (by a person or the clock)."""
        if int(ev.get("column", 0)) != 0:
            return
        if ev["event"] == "choice_offer":
            words = tuple(str(w[0]).strip() for w in ev["words"])[:9]
            self.offer = (words, t, float(ev["until"]), int(ev["poem"]))
        else:
            self.offer = None

    def _replaces(self) -> bool:
        """Does a new poem take the place of the last (rather than follow it down the page)?"""
        if self.layout == "stream":
            return False
        if self.layout == "columns":  # each column a stream of poems, unless it must fit one poem
            return resolve(self.look, "columns").overflow != "scroll"
        return True

    def _poem_start(self, t: float, ev: dict) -> None:
        col = self._col(ev)
        if col is None:
            return
        if self.xray is not None and int(ev.get("column", 0)) == 0:
            self.xray.poem(ev)
        model = str(ev.get("model", col.model))
        if not (model.endswith("@follow") and " · step " in col.model):  # keep the last checkpoint's
            col.model = model  # label until the worker names the new one (poem_info)
        if ev.get("checkpoint"):  # a followed model or a vintage: name the checkpoint that writes
            col.model = col.title = str(ev["checkpoint"])
        col.seed = ev.get("seed", 0)
        col.temperature = float(ev.get("temperature", col.temperature))
        col.started = t
        col.ended_at = None
        self.pause_until = None
        n = int(ev["n"])
        if self._replaces():
            # the old poem stays until the new one's first words appear: never a blank stage
            # while a flick poem is still being written
            col.pending = n
        else:
            self._append(col, n, "")

    def _token(self, t: float, ev: dict) -> None:
        col = self._col(ev)
        if col is None:
            return
        n, text = int(ev["poem"]), str(ev["text"])
        if col.pending == n or (not col.poems or col.poems[-1][0] != n) and self._replaces():
            col.pending = None
            look = resolve(self.look, self.layout)
            if col.poems and look.fade_out > 0:
                col.outgoing = (col.poems[-1][0], col.poems[-1][1])
                col.replaced_at = t
            else:
                col.outgoing = None
            col.poems.clear()
            col.chars = 0
            col.shown_at = t + (look.fade_out if col.outgoing else 0.0)
            col.poems.append([n, ""])
        elif not col.poems or col.poems[-1][0] != n:
            self._append(col, n, "")
        col.poems[-1][1] += text
        col.chars += len(text)
        col.temperature = float(ev.get("temperature", col.temperature))
        self._trim(col)

    def _append(self, col: _Column, n: int, text: str) -> None:
        if not col.poems:
            col.shown_at = col.started
        col.poems.append([n, text])
        col.chars += len(text)

    @staticmethod
    def _trim(col: _Column) -> None:
        while col.chars > STREAM_KEEP_CHARS and len(col.poems) > 1:
            col.chars -= len(col.poems.popleft()[1])
        if col.chars > STREAM_KEEP_CHARS:  # one runaway poem: keep its tail, from a line start if one is near
            tail = col.poems[0][1][col.chars - STREAM_KEEP_CHARS:]
            nl = tail.find("\n")
            if 0 <= nl < 200:
                tail = tail[nl + 1:]
            col.poems[0][1] = tail
            col.chars = len(tail)

    def _col(self, ev: dict) -> _Column | None:
        i = int(ev.get("column", 0))
        if not 0 <= i < MAX_COLUMNS:
            return None
        while i >= len(self.columns):
            self.columns.append(_Column(""))
        return self.columns[i]

    # ---- the view at time t -------------------------------------------------------------------
    def brightness(self, t: float) -> float:
        """Panic fades out, blackout is instant, resume fades back in."""
        if self.fade is None:
            return 1.0
        kind, t0, secs = self.fade
        frac = 1.0 if secs <= 0 else min(1.0, max(0.0, (t - t0) / secs))
        return 1.0 - frac if kind == "out" else frac

    def frame(self, t: float) -> StageView:
        """The immutable view at engine time t (t at or after the last applied event)."""
        look = resolve(self.look, self.layout)
        highlight, word = None, None
        for poem, line, start, end, words in reversed(self.speech):
            if start <= t < end:
                highlight, word = (poem, line), lit_word(words, t)
                break
        motion: list[int] = []  # the time-dependent parts, so `version` changes when they do
        cols = []
        for c in self.columns:
            poems, alphas = self._poems_at(c, look, t)
            motion.extend(alphas)
            page_clock = None
            # pages turn under overflow "page", and under "shrink" once even the smallest size is too big
            if c.ended_at is not None and t >= c.ended_at and look.overflow != "scroll" and self.layout != "stream":
                page_clock = t - c.ended_at
                motion.append(int(page_clock // look.page_seconds))
            cols.append(ColumnView(c.title, poems, highlight, c.started, page_clock,
                                   c.caption() if self.caption_on else None, word))
        caption = None
        if self.caption_on and self.columns and self.layout != "columns":
            caption = self.columns[0].caption()
        countdown = None
        if self.pause_until is not None and t < self.pause_until:
            countdown = self.pause_until - t
        version = self.version if not motion else hash((self.version, *motion))
        xray = self.xray.view() if self.xray is not None else None
        offer = None
        if self.offer is not None:
            words, at, until, _ = self.offer
            offer = OfferView(words, max(0.0, until - t), until - at)
            version = hash((version, "offer", int(offer.left * 20)))  # the bar shrinks in 50 ms steps
        return StageView(self.layout, look, tuple(cols), caption, countdown, self.brightness(t), version, xray,
                         offer)

    def _poems_at(self, c: _Column, look: Look, t: float) -> tuple[tuple[PoemText, ...], list[int]]:
        """A column's poems at t with their opacity: the outgoing poem while it fades out, then the
        new one fading in. Streams do not fade: a terminal types, it does not dissolve."""
        if c.outgoing is not None and look.fade_out > 0 and t < c.replaced_at + look.fade_out:
            a = _step(1.0 - (t - c.replaced_at) / look.fade_out)
            return (PoemText(c.outgoing[0], c.outgoing[1], a / ALPHA_STEPS),), [0, c.outgoing[0], a]
        if not c.poems:
            return (), []
        alpha = ALPHA_STEPS
        if look.fade_in > 0 and self.layout != "stream":
            alpha = _step((t - c.shown_at) / look.fade_in)
        poems = tuple(PoemText(n, text) for n, text in c.poems)
        if alpha >= ALPHA_STEPS:
            return poems, []
        last = poems[-1]
        return poems[:-1] + (PoemText(last.n, last.text, alpha / ALPHA_STEPS),), [1, last.n, alpha]


def lit_word(words: tuple, t: float) -> int | None:
    """The word being spoken at t: from its start until the next word starts (the last one until
    the line ends), so the light moves with the voice and does not flicker off between words."""
    lit = None
    for k, start, _end in words:
        if start > t:
            break
        lit = k
    return lit


def _step(frac: float) -> int:
    return int(round(min(1.0, max(0.0, frac)) * ALPHA_STEPS))
