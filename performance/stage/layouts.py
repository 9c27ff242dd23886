"""Where every line of a StageView goes: the five layouts, wrapping, and what happens to text that
does not fit (shrink, page or scroll — never cut off silently).

The result is a list of Placed lines and Rules in pixels; draw.py only renders and blits them, so
the typography can be reasoned about (and tested) without looking at pixels. Wrapping is cached
per paragraph and resumed from the last line when a paragraph grows, so a typewriter re-wraps one
line per token, not the page.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from performance.show.look import Look, colour, mix
from performance.stage.cowrite import place_offer
from performance.stage.fonts import LRU, MIN_SIZE, Fonts
from performance.stage.placed import Placed, Rule
from performance.stage.view import ColumnView, StageView
from performance.stage.xray import place_xray

READER_MEASURE_EM = 30  # a reader's line length in ems (~55 characters): a page, not a banner
HANGING_INDENT_EM = 1.5  # a verse line that wraps continues indented, so wraps read as wraps
COLUMN_GUTTER = 0.035  # of the stage's width
SMALL_TEXT_MIN = 0.022  # captions, titles and countdowns: at least this share of the screen height
FLICK_MAX_SIZE = 0.09  # a flick poem grows up to this share of the height while it fits
COLUMN_LINES = 14
LIT_LINE_DIM = 0.45  # while a word of the spoken line is lit, the rest of the line is this much dimmer  # columns are set so that this many lines (with wraps) fill their height


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    highlight: bool
    alpha: int
    indent: bool  # a continuation of a wrapped verse line
    word: int | None = None  # the word being spoken, counted within this wrapped line


class Layouter:
    """Turns StageViews into placed lines for a stage of one size."""

    def __init__(self, fonts: Fonts, size: tuple[int, int]) -> None:
        self.fonts = fonts
        self.size = size
        self._wraps = LRU(8192)
        self._growing: dict[tuple, tuple[str, tuple[int, ...]]] = {}  # the last wrapped paragraph per font/width
        self._fitted = LRU(256)  # (column, poem n, box) → the size that fitted last time
        self._box_fit = LRU(64)  # (column, box, base) → the size the last poem there fitted at

    # ---- wrapping -----------------------------------------------------------------------------
    def wrap(self, path: str, size: int, text: str, width: int, indent: int) -> tuple[str, ...]:
        """Break one paragraph into lines no wider than width (continuations `indent` narrower).
        A word wider than a whole line is broken between characters rather than overflowing."""
        key = (path, size, width, indent)

        def make() -> tuple[str, ...]:
            starts: list[int] = [0]
            prev = self._growing.get(key)
            if prev is not None and len(prev[1]) > 1 and text.startswith(prev[0]):
                starts = list(prev[1][:-1])  # every line but the last is unchanged: resume from there
            starts = self._break(path, size, text, width, indent, starts)
            if len(self._growing) > 64:
                self._growing.clear()
            self._growing[key] = (text, tuple(starts))
            ends = starts[1:] + [len(text)]
            return tuple(text[a:b].rstrip(" ") for a, b in zip(starts, ends, strict=True))

        return self._wraps.get_or((key, text), make)

    def _break(self, path: str, size: int, text: str, width: int, indent: int, starts: list[int]) -> list[int]:
        width_of = self.fonts.width
        i = starts[-1]
        n = len(text)
        while True:
            avail = width - (indent if len(starts) > 1 else 0)
            if width_of(path, size, text[i:].rstrip(" ")) <= avail:
                return starts
            # longest prefix ending at a space that fits
            j, best = i, -1
            while True:
                k = text.find(" ", j + 1)
                if k < 0:
                    break
                if width_of(path, size, text[i:k].rstrip(" ")) > avail:
                    break
                best, j = k, k
            if best > i:
                nxt = best + 1
                while nxt < n and text[nxt] == " ":
                    nxt += 1
            else:  # one word wider than the line: break it between characters
                nxt = i + 1
                while nxt < n and width_of(path, size, text[i:nxt + 1]) <= avail:
                    nxt += 1
            if nxt >= n:
                return starts
            starts.append(nxt)
            i = nxt

    # ---- blocks of text -----------------------------------------------------------------------
    @staticmethod
    def _paragraphs(col: ColumnView, poems: Sequence) -> list[tuple[str, int | None, int]]:
        """(text, spoken?, alpha) per paragraph; a blank line between poems and between stanzas,
        never more than one in a row (a model's run of newlines must not empty the screen)."""
        out: list[tuple[str, int | None, int]] = []
        for poem in poems:
            alpha = int(round(poem.alpha * 255))
            if out and out[-1][0]:
                out.append(("", None, alpha))
            nonblank = -1
            for para in poem.text.lstrip("\n").split("\n"):
                para = para.rstrip()
                if not para.strip():
                    if out and out[-1][0]:
                        out.append(("", None, alpha))
                    continue
                nonblank += 1
                spoken = col.highlight is not None and col.highlight == (poem.n, nonblank)
                # the spoken line carries its lit word's index (-1: the line without a word lit)
                lit = (col.word if col.word is not None else -1) if spoken else None
                out.append((para.replace("\t", "    "), lit, alpha))
        while out and not out[-1][0]:
            out.pop()
        return out

    def _lines(self, paragraphs: list[tuple[str, int | None, int]], path: str, size: int, width: int,
               hang: bool) -> list[_Line]:
        indent = int(size * HANGING_INDENT_EM) if hang else 0
        out: list[_Line] = []
        for text, lit, alpha in paragraphs:
            if not text:
                out.append(_Line("", False, alpha, False))
                continue
            first = 0  # words before this wrapped line: the lit word is counted along the wraps
            for k, ln in enumerate(self.wrap(path, size, text, width, indent)):
                n = len(ln.split())
                word = lit - first if lit is not None and first <= lit < first + n else None
                out.append(_Line(ln, lit is not None, alpha, k > 0 and hang, word))
                first += n
        return out

    def block(self, col: ColumnView, look: Look, box: tuple[int, int, int, int], base: int, key: tuple,
              overflow: str, valign: str = "top", align: str = "left") -> list[Placed]:
        """Lay a column's poems into box = (x, y, w, h)."""
        x0, y0, bw, bh = box
        path = self.fonts.path(look.font_path())
        paras = self._paragraphs(col, col.poems)
        if not paras:
            return []
        hang = align == "left"
        size = base
        if overflow == "shrink":
            size = self._fit(paras, path, base, bw, bh, look.line_spacing, hang, key)
            if not self._fits(paras, path, size, bw, bh, look.line_spacing, hang):
                overflow = "page"  # even the smallest legible size is too big: turn pages, cut nothing
        lh = max(1, int(self.fonts.line_height(path, size) * look.line_spacing))
        lines = self._lines(paras, path, size, bw, hang)
        fit = max(1, (bh + lh - self.fonts.line_height(path, size)) // lh)  # the last line needs no leading below
        if len(lines) > fit:
            if overflow == "page":
                pages = (len(lines) + fit - 1) // fit
                page = pages - 1  # while writing: the page that holds the newest line
                if col.page_clock is not None:  # complete: turn the pages in order, then again
                    page = int(col.page_clock // look.page_seconds) % pages
                lines = lines[page * fit:(page + 1) * fit]
            else:  # scroll: the newest lines, like a terminal
                lines = lines[-fit:]
        while lines and not lines[0].text:
            lines.pop(0)
        used = (len(lines) - 1) * lh + self.fonts.line_height(path, size) if lines else 0
        y = y0
        if valign == "center":
            y += max(0, (bh - used) // 2)
        elif valign == "upper":  # a short poem sits a little lower than the top, and does not move
            y += min(max(0, (bh - used) // 2), bh // 8)  # as its lines arrive; a long one rises to fit
        fg, hl = colour(look.color), colour(look.highlight)
        indent = int(size * HANGING_INDENT_EM)
        out: list[Placed] = []
        for ln in lines:
            if ln.text:
                x = x0 + (indent if ln.indent else 0)
                if align == "center":
                    x = x0 + (bw - self.fonts.width(path, size, ln.text)) // 2
                if ln.word is not None:  # the word stands out of its line, which steps back
                    rest = mix(hl, colour(look.background), LIT_LINE_DIM)
                    out.extend(self._lit(ln, path, size, rest, colour(look.spoken_word), x, y))
                else:
                    out.append(Placed(ln.text, path, size, hl if ln.highlight else fg, x, y, ln.alpha))
            y += lh
        return out

    def _lit(self, ln: _Line, path: str, size: int, hl: tuple[int, int, int], word_rgb: tuple[int, int, int],
             x: int, y: int) -> list[Placed]:
        """A spoken line in three runs: before the word, the word being spoken in its own colour,
        after it (placed where the whole line would have put them)."""
        spans = [m.span() for m in re.finditer(r"\S+", ln.text)]
        if ln.word is None or not 0 <= ln.word < len(spans):
            return [Placed(ln.text, path, size, hl, x, y, ln.alpha)]
        a, b = spans[ln.word]
        width = self.fonts.width
        runs = [(ln.text[:a], x, hl), (ln.text[a:b], x + width(path, size, ln.text[:a]), word_rgb),
                (ln.text[b:], x + width(path, size, ln.text[:b]), hl)]
        return [Placed(t, path, size, rgb, px, y, ln.alpha) for t, px, rgb in runs if t.strip()]

    def _fits(self, paras, path: str, size: int, bw: int, bh: int, spacing: float, hang: bool) -> bool:
        lh = max(1, int(self.fonts.line_height(path, size) * spacing))
        n = len(self._lines(paras, path, size, bw, hang))
        return (n - 1) * lh + self.fonts.line_height(path, size) <= bh

    def _fit(self, paras, path: str, base: int, bw: int, bh: int, spacing: float, hang: bool, key: tuple) -> int:
        """The largest size <= base at which the text fits. Deterministic (a re-render of the session
        finds the same size); the last answer is tried first because within a poem it rarely moves."""
        # a new poem in the same box (a flick) usually fits near the last poem's size: start there,
        # so a 222-word poem costs two or three wraps instead of a whole binary search on its frame
        box_key = (key[0], key[2], base)
        hint = self._fitted.get(key) or self._box_fit.get(box_key)
        lo, hi = MIN_SIZE, base
        if hint is not None and MIN_SIZE <= hint <= base:
            if self._fits(paras, path, hint, bw, bh, spacing, hang):
                if hint == base or not self._fits(paras, path, hint + 1, bw, bh, spacing, hang):
                    return self._remember(key, box_key, hint)
                lo = hint + 1 if self._fits(paras, path, hint + 1, bw, bh, spacing, hang) else hint
            else:
                hi = hint - 1
        if lo < hi and self._fits(paras, path, hi, bw, bh, spacing, hang):
            lo = hi
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._fits(paras, path, mid, bw, bh, spacing, hang):
                lo = mid
            else:
                hi = mid - 1
        return self._remember(key, box_key, max(lo, MIN_SIZE))

    def _remember(self, key: tuple, box_key: tuple, size: int) -> int:
        for cache, k in ((self._fitted, key), (self._box_fit, box_key)):
            cache.get_or(k, lambda: size)  # inserts with eviction (the caches stay bounded)
            cache[k] = size
        return size

    # ---- the five layouts ---------------------------------------------------------------------
    def place(self, view: StageView) -> list[Placed | Rule]:
        """Every line and rule of the frame, in drawing order."""
        look = view.look
        w, h = self.size
        scale = h / 1080
        base = max(MIN_SIZE, int(round(look.size * scale)))
        mx, my = int(w * look.margin), int(h * look.margin)
        box = (mx, my, w - 2 * mx, h - 2 * my)
        text, text_left = self._place_text(view, box, base, scale)
        out = text + self._place_footer(view, text_left, scale, (mx, my))
        if getattr(view, "offer", None) is not None:  # co-writing: the candidates for the next word

            out += place_offer(self, view, base, (mx, my))
        return out

    def _reader_box(self, box: tuple[int, int, int, int], base: int) -> tuple[int, int, int, int]:
        """The reader's measure: a column of READER_MEASURE_EM ems centred across the screen."""
        measure = min(box[2], int(base * READER_MEASURE_EM))
        return ((self.size[0] - measure) // 2, box[1], measure, box[3])

    def _place_text(self, view: StageView, box: tuple[int, int, int, int], base: int,
                    scale: float) -> tuple[list[Placed | Rule], int]:
        """The poem text as the scene's layout places it, and the x the caption lines up with
        (the left edge of the text it describes)."""
        look = view.look
        cols = view.columns
        layout = view.layout
        text_left = box[0]
        if getattr(view, "xray", None) is not None and layout in ("xray", "stream", "reader"):
            if layout == "reader":
                box = self._reader_box(box, base)
                text_left = box[0]
            return place_xray(self, view, box, base, scale), text_left
        if layout == "columns" and cols:
            return self._columns(view, box, base, scale), text_left
        if not cols:
            return [], text_left
        col = cols[0]
        n = col.poems[-1].n if col.poems else 0
        if layout == "stream":
            return self.block(col, look, box, base, (0, n, box), "scroll"), text_left
        if layout == "sentence":
            return self.block(col, look, box, base, (0, n, box), look.overflow, "center", "center"), text_left
        if layout == "reader":
            rbox = self._reader_box(box, base)
            return self.block(col, look, rbox, base, (0, n, rbox), look.overflow, "upper", look.align), rbox[0]
        return self._place_flick(col, look, box, base, n)

    def _place_flick(self, col, look, box: tuple[int, int, int, int], base: int,
                     n: int) -> tuple[list[Placed | Rule], int]:
        """Flick: the whole poem at once, as large as fits, centred on the screen; a left-aligned
        block is centred as a whole. Returns the lines and their left edge."""
        grow = max(base, int(self.size[1] * FLICK_MAX_SIZE))
        overflow = "shrink" if look.overflow in ("shrink", "grow") else look.overflow
        lines = self.block(col, look, box, grow, (0, n, box), overflow, "center", look.align)
        text_left = box[0]
        if lines and look.align == "left":  # a left-aligned block, centred as a whole
            right = max(p.x + self.fonts.width(p.font, p.size, p.text) for p in lines)
            dx = max(0, (box[0] + box[2] - right) // 2)
            lines = [dataclasses.replace(p, x=p.x + dx) for p in lines]
            text_left = box[0] + dx
        return lines, text_left

    def _place_footer(self, view: StageView, text_left: int, scale: float,
                      margins: tuple[int, int]) -> list[Placed | Rule]:
        """The bottom margin: the caption under the text, the countdown at the right (or, in the
        reader, large and centred)."""
        look = view.look
        w, h = self.size
        mx, my = margins
        out: list[Placed | Rule] = []
        # read from the back of a room: never under 2.2% of the screen height (24 px at 1080 lines)
        small = max(MIN_SIZE, int(round(look.caption_size * scale)), int(math.ceil(h * SMALL_TEXT_MIN)))
        fg, bg = colour(look.color), colour(look.background)
        path = self.fonts.path(look.font_path())
        foot_y = h - my // 2 - self.fonts.line_height(path, small) // 2  # centred in the bottom margin
        if view.caption:
            x = text_left
            if look.align == "center":
                x = (w - self.fonts.width(path, small, view.caption)) // 2
            out.append(Placed(view.caption, path, small, mix(fg, bg, 0.5), x, foot_y))
        if view.countdown is not None and look.countdown:
            secs = max(0, int(view.countdown + 0.999))
            label = f"{secs // 60}:{secs % 60:02d}"
            rgb = mix(colour(look.highlight), bg, 0.15)
            if view.layout == "reader":  # the reader's audience waits for the next poem: show it plainly
                size = max(MIN_SIZE, int(round(look.size * 0.9 * scale)))
                lh = self.fonts.line_height(path, size)
                x = (w - self.fonts.width(path, size, label)) // 2
                y = min(h - my // 2 - lh // 2, h - lh)  # centred in the bottom margin, like the caption
                out.append(Placed(label, path, size, rgb, x, y))
            else:
                out.append(Placed(label, path, small, rgb, w - mx - self.fonts.width(path, small, label), foot_y))
        return out

    def _columns(self, view: StageView, box: tuple[int, int, int, int], base: int, scale: float) -> list[Placed | Rule]:
        look = view.look
        cols = view.columns
        x0, y0, bw, bh = box
        w = self.size[0]
        gap = int(w * COLUMN_GUTTER)
        cw = (bw - gap * (len(cols) - 1)) // len(cols)
        path = self.fonts.path(look.font_path())
        title_size = max(MIN_SIZE, int(round(look.caption_size * scale)), int(math.ceil(self.size[1] * SMALL_TEXT_MIN)))
        tlh = self.fonts.line_height(path, title_size)
        fg, bg = colour(look.color), colour(look.background)
        out: list[Placed | Rule] = []
        for i, col in enumerate(cols):
            x = x0 + i * (cw + gap)
            title = col.caption or col.title
            if title:
                while len(title) > 1 and self.fonts.width(path, title_size, title) > cw:
                    title = title[:-2] + "…"  # a header never runs into the next column
                out.append(Placed(title, path, title_size, mix(fg, bg, 0.45), x, y0))
                rule_y = y0 + tlh + int(6 * scale)
                out.append(Rule(x, rule_y, cw, max(1, int(round(scale))), mix(fg, bg, 0.8)))
                top = rule_y + int(tlh * 1.2)
            else:
                top = y0
            n = col.poems[-1].n if col.poems else 0
            cbox = (x, top, cw, y0 + bh - top)
            # the columns use the full height: the type is sized so that COLUMN_LINES lines fill it
            # (longer poems still shrink to fit); a short poem does not sit in the top third
            fill = int(cbox[3] / (COLUMN_LINES * look.line_spacing * 1.17))  # 1.17: a line's height per px of size
            out += self.block(col, look, cbox, max(base, fill), (i, n, cbox), look.overflow, "top", look.align)
        return out
