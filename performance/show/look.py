"""A scene's look: font, size, colours, margins, spacing, fades, overflow, caption, highlight, countdown.

Keys left unset in a scene (size, margin, align, overflow) take the layout's own default, so a
scene that only says `layout = "sentence"` still gets a large centred line, and a stream gets a
terminal-sized one. `resolve(look, layout)` fills them in; the drawing only sees resolved looks.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from performance.show.font_probe import FONTS_DIR, REPO, probe_font
from performance.show.schema import ConfigError, Table

log = logging.getLogger(__name__)

NAMED_FONTS = {"serif": "DejaVuSerif.ttf", "sans": "DejaVuSans.ttf", "mono": "DejaVuSansMono.ttf"}
LAYOUTS = ("stream", "flick", "sentence", "reader", "columns", "xray")
ALIGNS = ("left", "center")
OVERFLOWS = ("shrink", "page", "scroll")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

# What each layout is for decides its defaults: a stream reads like a terminal, a sentence is one
# line for a room to read from afar, a reader is a page of verse, columns must fit several side by side.
LAYOUT_DEFAULTS: dict[str, dict[str, Any]] = {
    "stream": {"size": 34, "margin": 0.07, "align": "left", "overflow": "scroll"},
    "flick": {"size": 30, "margin": 0.08, "align": "left", "overflow": "shrink"},
    "sentence": {"size": 64, "margin": 0.12, "align": "center", "overflow": "shrink"},
    "reader": {"size": 44, "margin": 0.09, "align": "left", "overflow": "shrink"},
    "columns": {"size": 26, "margin": 0.06, "align": "left", "overflow": "scroll"},
    "xray": {"size": 34, "margin": 0.07, "align": "left", "overflow": "scroll"},
}


def colour(text: str) -> tuple[int, int, int]:
    """'#rrggbb' → (r, g, b)."""
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


def mix(a: tuple[int, int, int], b: tuple[int, int, int], k: float) -> tuple[int, int, int]:
    """a moved a fraction k of the way towards b (dim text = colour mixed into the background)."""
    return tuple(int(round(x + (y - x) * k)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True)
class Look:
    """How a scene looks. Sizes are pixels at 1080 lines and scale with the stage's height;
    margin is a fraction of the stage's width and height. None = the layout's default."""

    font: str = "serif"  # serif | sans | mono | path to a .ttf/.otf
    size: int | None = None
    color: str = "#e8e4da"
    background: str = "#050505"
    margin: float | None = None
    line_spacing: float = 1.35
    align: str | None = None  # left | center
    fade_in: float = 0.0  # seconds a new poem takes to appear (flick, sentence, reader, columns)
    fade_out: float = 0.0  # seconds the previous poem takes to go before the next appears
    overflow: str | None = None  # shrink | page | scroll
    page_seconds: float = 6.0  # overflow "page": how long each page stays once a poem is complete
    caption: bool = False  # model · temperature · seed (the c key toggles it)
    caption_size: int = 20
    highlight: str = "#ffd37a"  # the line being spoken
    spoken_word: str = "#ffd37a"  # the word being spoken; the rest of its line dims towards the background
    countdown: bool = True  # during timed pauses
    confidence_low: str = "#ff5a2e"  # x-ray: text the model was unsure of (hot) ...
    confidence_high: str = "#7cc8ff"  # ... and text it was sure of (cool); swap them for the reverse
    neuron_positive: str = "#2f8f5a"  # x-ray: behind text where the watched unit fires positive
    neuron_negative: str = "#8f2f55"  # ... and negative

    def font_path(self) -> Path:
        """The font file this look names."""
        if self.font in NAMED_FONTS:
            return FONTS_DIR / NAMED_FONTS[self.font]
        return Path(self.font)

    @classmethod
    def from_table(cls, t: Table) -> Look:
        """Validate a scene's [look] table; every bad key is one ConfigError line naming file and key."""
        d = cls()
        font = t.str("font", d.font)
        if font not in NAMED_FONTS:
            font = str(_font_file(font, t))
        values: dict[str, Any] = {"font": font}
        for key in ("color", "background", "highlight", "confidence_low", "confidence_high", "neuron_positive",
                    "neuron_negative", "spoken_word"):
            v = t.str(key, getattr(d, key))
            if not _COLOUR.match(v):
                raise t.error(key, v, 'a colour as "#rrggbb", e.g. "#e8e4da"')
            values[key] = v.lower()
        values.update(
            size=t.int("size", None, lo=6, hi=400),
            margin=t.float("margin", None, lo=0.0, hi=0.4),
            line_spacing=t.float("line_spacing", d.line_spacing, lo=0.8, hi=4.0),
            align=t.str("align", None, ALIGNS),
            fade_in=t.float("fade_in", d.fade_in, lo=0.0, hi=30.0),
            fade_out=t.float("fade_out", d.fade_out, lo=0.0, hi=30.0),
            overflow=t.str("overflow", None, OVERFLOWS),
            page_seconds=t.float("page_seconds", d.page_seconds, lo=0.5, hi=600.0),
            caption=t.bool("caption", d.caption),
            caption_size=t.int("caption_size", d.caption_size, lo=6, hi=200),
            countdown=t.bool("countdown", d.countdown),
        )
        t.check_unknown()
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the scene event carries it, so a transcript re-renders alike)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Look:
        """Rebuild from to_dict(). Lenient, because a transcript may come from another version or
        machine: unknown keys are ignored and a value that does not validate keeps its default."""
        if not isinstance(d, dict) or not d:
            return cls()
        known = {f.name for f in fields(cls)}
        good: dict[str, Any] = {}
        for k, v in d.items():
            if k not in known or v is None:
                continue
            if k == "font" and isinstance(v, str):
                good[k] = v  # a missing font file falls back when drawn, not here
                continue
            try:
                good[k] = getattr(cls.from_table(Table({k: v}, "<transcript>", "look")), k)
            except ConfigError as e:
                log.warning("look ignored: %s", e)
        return cls(**good)


def _font_file(font: str, t: Table) -> Path:
    """A font path: absolute, or relative to the scene file, or to the project root."""
    p = Path(font)
    candidates = [p] if p.is_absolute() else [Path(t.file).parent / p, REPO / p]
    for c in candidates:
        if c.suffix.lower() in (".ttf", ".otf") and c.is_file():
            bad = probe_font(c)
            if bad is not None:
                raise t.error("font", font, f"this font {bad}; use serif, sans, mono or another file")
            return c.resolve()
    raise t.error("font", font, "serif, sans, mono, or an existing .ttf/.otf file")


@lru_cache(maxsize=64)
def resolve(look: Look, layout: str) -> Look:
    """The look with every layout-dependent key (None) filled from the layout's defaults."""
    defaults = LAYOUT_DEFAULTS.get(layout, LAYOUT_DEFAULTS["stream"])
    missing = {k: v for k, v in defaults.items() if getattr(look, k) is None}
    return replace(look, **missing) if missing else look
