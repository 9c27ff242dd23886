"""Draw a StageView with pygame: five layouts, text that never silently overflows, fades, caption,
countdown, the spoken line highlighted.

Speed comes from caching: fonts by (file, size), wrapped paragraphs by (text, font, width), rendered
lines by (text, font, colour). As a poem grows only its last paragraph is re-wrapped and only its
last line re-rendered; a frame is a fill and a few dozen blits.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pygame

from performance.stage.look import FONTS_DIR, Look, colour
from performance.stage.view import ColumnView, StageView

FALLBACK_FONT = FONTS_DIR / "DejaVuSans.ttf"
MIN_SIZE = 10


class _LRU(OrderedDict):
    """A least-recently-used cache bounded by entries and, for surfaces, by their pixel bytes
    (weeks of 1080p text would otherwise keep hundreds of megabytes of old lines)."""

    def __init__(self, cap: int, max_bytes: int | None = None) -> None:
        super().__init__()
        self.cap = cap
        self.max_bytes = max_bytes
        self.bytes = 0

    @staticmethod
    def _size(value) -> int:
        return value.get_width() * value.get_height() * 4 if isinstance(value, pygame.Surface) else 0

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        self.bytes += self._size(value)
        while len(self) > self.cap or (self.max_bytes is not None and self.bytes > self.max_bytes and len(self) > 1):
            _, old = self.popitem(last=False)
            self.bytes -= self._size(old)
        return value


class Fonts:
    """Fonts by (path, size); a fallback font renders glyphs the main font lacks."""

    def __init__(self) -> None:
        if not pygame.font.get_init():
            pygame.font.init()
        self._fonts: dict[tuple[str, int], pygame.font.Font] = {}
        self._missing = _LRU(4096)

    def get(self, path: Path | str, size: int) -> pygame.font.Font:
        key = (str(path), max(MIN_SIZE, int(size)))
        f = self._fonts.get(key)
        if f is None:
            try:
                f = pygame.font.Font(key[0], key[1])
            except (OSError, FileNotFoundError):
                f = pygame.font.Font(str(FALLBACK_FONT), key[1])
            self._fonts[key] = f
        return f

    def fallback(self, size: int) -> pygame.font.Font:
        return self.get(FALLBACK_FONT, size)

    def lacks(self, font: pygame.font.Font, text: str) -> bool:
        """Does `font` miss any glyph of `text`? (metrics() gives None for a missing glyph.)"""
        key = (id(font), text)

        def check() -> bool:
            try:
                return any(m is None for m in font.metrics(text))
            except pygame.error:
                return True

        return self._missing.get_or(key, check)


class StageRenderer:
    """Draws StageViews onto a surface of a fixed size."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.fonts = Fonts()
        self._wrap = _LRU(4096)
        self._lines = _LRU(1024, max_bytes=48 << 20)
        self._shrunk: dict[tuple[int, int], int] = {}
        self._overlay = pygame.Surface(size)

    # ---- text primitives ----------------------------------------------------------------------
    def _render(self, text: str, font: pygame.font.Font, size: int, rgb: tuple[int, int, int]) -> pygame.Surface:
        def make() -> pygame.Surface:
            if not self.fonts.lacks(font, text):
                return font.render(text, True, rgb)
            # mixed: runs of characters the main font has, and runs it lacks via the fallback
            fb = self.fonts.fallback(size)
            parts, run, run_fb = [], "", None
            for ch in text:
                use_fb = self.fonts.lacks(font, ch)
                if run and use_fb != run_fb:
                    parts.append((fb if run_fb else font).render(run, True, rgb))
                    run = ""
                run, run_fb = run + ch, use_fb
            if run:
                parts.append((fb if run_fb else font).render(run, True, rgb))
            w = sum(p.get_width() for p in parts)
            h = max(p.get_height() for p in parts)
            surf = pygame.Surface((max(1, w), h), pygame.SRCALPHA)
            x = 0
            for p in parts:
                surf.blit(p, (x, 0))
                x += p.get_width()
            return surf

        return self._lines.get_or((text, id(font), rgb), make)

    def _wrap_paragraph(self, text: str, font: pygame.font.Font, width: int) -> tuple[str, ...]:
        def make() -> tuple[str, ...]:
            if not text:
                return ("",)
            words = text.split(" ")
            lines, cur = [], ""
            for w in words:
                trial = w if not cur else cur + " " + w
                if font.size(trial)[0] <= width or not cur:
                    cur = trial
                    while font.size(cur)[0] > width and len(cur) > 1:  # a single word wider than the box
                        cut = len(cur) - 1
                        while cut > 1 and font.size(cur[:cut])[0] > width:
                            cut -= 1
                        lines.append(cur[:cut])
                        cur = cur[cut:]
                else:
                    lines.append(cur)
                    cur = w
            lines.append(cur)
            return tuple(lines)

        return self._wrap.get_or((text, id(font), width), make)

    def _layout_lines(self, paragraphs: list[tuple[str, bool]], font: pygame.font.Font, width: int) -> list[tuple[str, bool]]:
        out = []
        for text, hl in paragraphs:
            out.extend((ln, hl) for ln in self._wrap_paragraph(text, font, width))
        return out

    # ---- content -----------------------------------------------------------------------------
    @staticmethod
    def _paragraphs(col: ColumnView, poems: tuple, gap: bool) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        for k, poem in enumerate(poems):
            text = poem.text.lstrip("\n")
            if k and gap:
                out.append(("", False))
            nonblank = -1
            for para in text.split("\n"):
                hl = False
                if para.strip():
                    nonblank += 1
                    hl = col.highlight is not None and col.highlight == (poem.n, nonblank)
                out.append((para.rstrip(), hl))
        return out

    def _block(self, surface: pygame.Surface, col: ColumnView, look: Look, box: pygame.Rect, scale: float,
               mode: str, key: tuple[int, int], center_v: bool = False, align: str | None = None) -> None:
        """Draw a column's text into box: mode stream (newest at the bottom) or poem (shrink/page/scroll)."""
        align = align or look.align
        base = max(MIN_SIZE, int(look.size * scale))
        poems = col.poems if mode == "stream" else col.poems[-1:]
        paragraphs = self._paragraphs(col, poems, gap=True)
        path = look.font_path()
        size = base
        overflow = "scroll" if mode == "stream" else look.overflow
        if overflow == "shrink" and poems:
            size = min(base, self._shrunk.get(key, base))
            for _ in range(12):
                font = self.fonts.get(path, size)
                lh = int(font.get_linesize() * look.line_spacing)
                lines = self._layout_lines(paragraphs, font, box.width)
                if len(lines) * lh <= box.height or size <= MIN_SIZE:
                    break
                size = max(MIN_SIZE, int(size * min(0.95, (box.height / (len(lines) * lh)) ** 0.5)))
            if len(self._shrunk) > 64:
                self._shrunk.clear()
            self._shrunk[key] = size  # within a poem text only shrinks: no jumping back
        font = self.fonts.get(path, size)
        lh = int(font.get_linesize() * look.line_spacing)
        lines = self._layout_lines(paragraphs, font, box.width)
        fit = max(1, box.height // lh)
        if len(lines) > fit:
            if overflow == "page":
                start = ((len(lines) - 1) // fit) * fit  # the page holding the newest line
                lines = lines[start:start + fit]
            else:  # scroll / stream: the newest lines, like a terminal
                lines = lines[-fit:]
        while lines and not lines[-1][0] and mode != "stream":
            lines.pop()
        fg, hl_rgb = colour(look.color), colour(look.highlight)
        total = len(lines) * lh
        y = box.top + max(0, (box.height - total) // 2) if center_v else box.top
        for text, hl in lines:
            if text:
                surf = self._render(text, font, size, hl_rgb if hl else fg)
                x = box.left + (box.width - surf.get_width()) // 2 if align == "center" else box.left
                surface.blit(surf, (x, y))
            y += lh

    # ---- frame -------------------------------------------------------------------------------
    def draw(self, surface: pygame.Surface, view: StageView) -> None:
        look = view.look
        w, h = surface.get_size()
        scale = h / 1080
        if view.brightness <= 0.0:
            surface.fill((0, 0, 0))
            return
        surface.fill(colour(look.background))
        mx, my = int(w * look.margin), int(h * look.margin)
        box = pygame.Rect(mx, my, w - 2 * mx, h - 2 * my)
        if view.caption:
            box.height -= int(look.caption_size * scale * 2)
        layout = view.layout
        cols = view.columns or ()
        if layout == "columns" and cols:
            gap = int(w * 0.03)
            cw = (box.width - gap * (len(cols) - 1)) // len(cols)
            title_size = max(MIN_SIZE, int(look.caption_size * scale))
            tfont = self.fonts.get(look.font_path(), title_size)
            dim = tuple(int(c * 0.55) for c in colour(look.color))
            for i, col in enumerate(cols):
                r = pygame.Rect(box.left + i * (cw + gap), box.top, cw, box.height)
                if col.title:
                    surface.blit(self._render(col.title, tfont, title_size, dim), (r.left, r.top))
                    r.top += int(tfont.get_linesize() * 2)
                    r.height -= int(tfont.get_linesize() * 2)
                n = col.poems[-1].n if col.poems else 0
                self._block(surface, col, look, r, scale, "poem", (i, n))
        elif cols:
            col = cols[0]
            n = col.poems[-1].n if col.poems else 0
            if layout == "stream":
                self._block(surface, col, look, box, scale, "stream", (0, n))
            elif layout == "sentence":
                self._block(surface, col, look, box, scale, "poem", (0, n), center_v=True, align="center")
            else:  # flick, reader
                self._block(surface, col, look, box, scale, "poem", (0, n), center_v=(layout == "reader"))
        if view.caption:
            size = max(MIN_SIZE, int(look.caption_size * scale))
            font = self.fonts.get(look.font_path(), size)
            dim = tuple(int(c * 0.5) for c in colour(look.color))
            surface.blit(self._render(view.caption, font, size, dim), (mx, h - my // 2 - font.get_linesize()))
        if view.countdown is not None and look.countdown:
            self._countdown(surface, view, look, scale)
        if view.brightness < 1.0:
            self._overlay.fill((0, 0, 0))
            self._overlay.set_alpha(int(255 * (1.0 - view.brightness)))
            surface.blit(self._overlay, (0, 0))

    def _countdown(self, surface: pygame.Surface, view: StageView, look: Look, scale: float) -> None:
        w, h = surface.get_size()
        secs = max(0, int(view.countdown + 0.999))
        big = view.layout == "reader"
        size = max(MIN_SIZE, int((look.size * 1.4 if big else look.caption_size) * scale))
        font = self.fonts.get(look.font_path(), size)
        label = f"{secs // 60}:{secs % 60:02d}"
        surf = self._render(label, font, size, colour(look.highlight))
        if big:
            x, y = (w - surf.get_width()) // 2, h - int(h * look.margin * 0.5) - surf.get_height()
        else:
            x, y = w - int(w * look.margin) - surf.get_width(), h - int(h * look.margin * 0.5) - surf.get_height()
        surface.blit(surf, (x, y))
