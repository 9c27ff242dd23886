"""Fonts loaded once, measured cheaply, with a fallback for the glyphs a font lacks.

pygame.font (SDL_ttf) renders and measures; pygame.freetype answers "does this font have this
glyph?" (its get_metrics gives None for a missing glyph, where SDL_ttf silently measures the
.notdef box). A line is split into runs: characters the main font has, and characters it lacks,
which the fallback font (DejaVu Sans, the widest coverage shipped) draws instead.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pygame
import pygame.freetype

from performance.show.font_probe import FONTS_DIR, probe_font

log = logging.getLogger(__name__)

FALLBACK_FONT = FONTS_DIR / "DejaVuSans.ttf"
MIN_SIZE = 10
_PROBE_SIZE = 16  # glyph coverage does not depend on size: one freetype face per file


class LRU(OrderedDict):
    """A least-recently-used cache bounded by entries, and optionally by the pixel bytes of the
    surfaces it holds (weeks of 1080p text would otherwise keep hundreds of megabytes of lines)."""

    def __init__(self, cap: int, max_bytes: int | None = None) -> None:
        super().__init__()
        self.cap = cap
        self.max_bytes = max_bytes
        self.bytes = 0

    @staticmethod
    def _size(value: Any) -> int:
        return value.get_width() * value.get_height() * 4 if isinstance(value, pygame.Surface) else 0

    def get_or(self, key: Any, make: Any) -> Any:
        """The cached value for key, made (and the oldest entries evicted) on a miss."""
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
    """Fonts by (file, pixel size), loaded once; glyph coverage per file; text split into runs."""

    def __init__(self) -> None:
        if not pygame.font.get_init():
            pygame.font.init()
        if not pygame.freetype.get_init():
            pygame.freetype.init()
        self._fonts: dict[tuple[str, int], pygame.font.Font] = {}
        self._faces: dict[str, pygame.freetype.Font | None] = {}
        self._runs = LRU(8192)
        self._widths = LRU(16384)
        self._bad: set[str] = set()

    def path(self, path: Path | str) -> str:
        """The file that will really be used: a font that cannot be opened falls back, logged once."""
        p = str(path)
        if p in self._bad:
            return str(FALLBACK_FONT)
        return p

    def get(self, path: Path | str, size: int) -> pygame.font.Font:
        """The font at a pixel size (at least MIN_SIZE)."""
        key = (self.path(path), max(MIN_SIZE, int(size)))
        f = self._fonts.get(key)
        if f is None:
            bad = probe_font(key[0]) if key[0] != str(FALLBACK_FONT) else None
            if bad is not None:  # never hand SDL_ttf a font that crashed or failed a test render
                log.warning("font %s %s; using %s", key[0], bad, FALLBACK_FONT.name)
                self._bad.add(key[0])
                return self.get(FALLBACK_FONT, key[1])
            try:
                f = pygame.font.Font(key[0], key[1])
            except (OSError, FileNotFoundError, pygame.error) as e:
                log.warning("font %s cannot be opened (%s); using %s", key[0], e, FALLBACK_FONT.name)
                self._bad.add(key[0])
                return self.get(FALLBACK_FONT, key[1])
            if len(self._fonts) > 256:  # a shrinking poem visits many sizes; keep the set small
                self._fonts.clear()
            self._fonts[key] = f
        return f

    def _face(self, path: str) -> pygame.freetype.Font | None:
        if path not in self._faces and probe_font(path) is not None:
            self._faces[path] = None
        if path not in self._faces:
            try:
                self._faces[path] = pygame.freetype.Font(path, _PROBE_SIZE)
            except (OSError, FileNotFoundError, pygame.error):
                self._faces[path] = None
        return self._faces[path]

    def missing(self, path: Path | str, text: str) -> list[bool]:
        """For each character of text: does the font at path lack its glyph?"""
        face = self._face(self.path(path))
        if face is None:
            return [True] * len(text)
        try:
            return [m is None and not ch.isspace() for ch, m in zip(text, face.get_metrics(text), strict=False)]
        except pygame.error:
            return [True] * len(text)

    def runs(self, path: Path | str, text: str) -> tuple[tuple[str, bool], ...]:
        """text as runs of (characters, drawn with the fallback font?); one run when nothing is missing."""
        p = self.path(path)

        def make() -> tuple[tuple[str, bool], ...]:
            if p == str(FALLBACK_FONT) or text.isascii():  # every shipped font covers ASCII
                return ((text, False),)
            out: list[tuple[str, bool]] = []
            for ch, lack in zip(text, self.missing(p, text), strict=False):
                if out and out[-1][1] == lack:
                    out[-1] = (out[-1][0] + ch, lack)
                else:
                    out.append((ch, lack))
            return tuple(out) or (("", False),)

        return self._runs.get_or((p, text), make)

    def font_for(self, path: Path | str, size: int, fallback: bool) -> pygame.font.Font:
        """The main font, or the fallback for a run the main font lacks."""
        return self.get(FALLBACK_FONT if fallback else path, size)

    def width(self, path: Path | str, size: int, text: str) -> int:
        """Rendered width of text in pixels, fallback runs included."""
        key = (self.path(path), size, text)

        def make() -> int:
            return sum(self.font_for(path, size, fb).size(run)[0] for run, fb in self.runs(path, text))

        return self._widths.get_or(key, make)

    def line_height(self, path: Path | str, size: int) -> int:
        """The font's own line height (ascent + descent + gap) at size."""
        return self.get(path, size).get_linesize()
