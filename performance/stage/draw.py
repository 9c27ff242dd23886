"""Draw a StageView with pygame: the layouts place the lines (layouts.py), this renders and blits.

Speed comes from caching at three levels: the whole frame's placement is kept while the view's
key is unchanged; each rendered line surface is kept (by text, font, size, colour) in a cache
bounded by bytes; fonts are loaded once. As a typewriter reveals a token only the last line is
rendered anew; a steady frame is one fill and a few dozen blits of opaque surfaces in the stage's
own pixel format. Fades use surface alpha, panic a single multiplying fill.
"""

from __future__ import annotations

import pygame

from performance.show.look import colour
from performance.stage.fonts import LRU, Fonts
from performance.stage.layouts import Layouter
from performance.stage.placed import Placed, Rule
from performance.stage.view import StageView

LINE_CACHE_BYTES = 64 << 20  # rendered lines kept; a 1080p page of text is ~2 MB


class StageRenderer:
    """Draws StageViews onto surfaces of one size (the stage's, or the recorder's)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.fonts = Fonts()
        self.layouter = Layouter(self.fonts, self.size)
        self._lines = LRU(4096, max_bytes=LINE_CACHE_BYTES)
        self._placed_key: tuple | None = None
        self._placed: list[Placed | Rule] = []

    def place(self, view: StageView) -> list[Placed | Rule]:
        """The frame's lines and rules in pixels (kept while nothing that moves them changed)."""
        key = (view.version, view.look, view.caption, view.key[2], tuple((c.highlight, c.word) for c in view.columns))
        if key != self._placed_key:
            self._placed = self.layouter.place(view)
            self._placed_key = key
        return self._placed

    def draw(self, surface: pygame.Surface, view: StageView) -> None:
        """Draw the whole frame onto surface (of this renderer's size)."""
        if view.brightness <= 0.0:
            surface.fill((0, 0, 0))
            return
        bg = colour(view.look.background)
        surface.fill(bg)
        for item in self.place(view):
            if isinstance(item, Rule):
                surface.fill(item.rgb, (item.x, item.y, item.width, item.height))
                continue
            line = self.line(item, item.bg or bg, surface)
            line.set_alpha(item.alpha if item.alpha < 255 else None)
            surface.blit(line, (item.x, item.y))
        if view.brightness < 1.0:
            k = int(round(255 * view.brightness))
            surface.fill((k, k, k), special_flags=pygame.BLEND_RGB_MULT)

    def line(self, item: Placed, bg: tuple[int, int, int], target: pygame.Surface) -> pygame.Surface:
        """One rendered line: opaque on the background, in the target's pixel format, with the
        runs the font lacks drawn by the fallback font on the same baseline."""
        key = (item.text, item.font, item.size, item.rgb, bg, target.get_bitsize())

        def make() -> pygame.Surface:
            runs = self.fonts.runs(item.font, item.text)
            if len(runs) == 1 and not runs[0][1]:
                surf = self.fonts.get(item.font, item.size).render(item.text, True, item.rgb, bg)
            else:
                fonts = [self.fonts.font_for(item.font, item.size, fb) for _, fb in runs]
                parts = [f.render(text, True, item.rgb, bg) for f, (text, _) in zip(fonts, runs, strict=True)]
                ascent = max(f.get_ascent() for f in fonts)
                height = max(ascent - f.get_ascent() + p.get_height() for f, p in zip(fonts, parts, strict=True))
                surf = pygame.Surface((max(1, sum(p.get_width() for p in parts)), height))
                surf.fill(bg)
                x = 0
                for f, p in zip(fonts, parts, strict=True):
                    surf.blit(p, (x, ascent - f.get_ascent()))
                    x += p.get_width()
            return surf.convert(target) if surf.get_bitsize() != target.get_bitsize() else surf

        return self._lines.get_or(key, make)
