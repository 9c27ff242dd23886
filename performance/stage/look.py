"""A scene's look: font, size, colours, margins, spacing, overflow, caption, highlight, countdown."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from performance.show.schema import Table

FONTS_DIR = Path(__file__).resolve().parents[2] / "assets" / "fonts"
NAMED_FONTS = {"serif": "DejaVuSerif.ttf", "sans": "DejaVuSans.ttf", "mono": "DejaVuSansMono.ttf"}
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def colour(text: str) -> tuple[int, int, int]:
    return int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16)


@dataclass(frozen=True)
class Look:
    """Sizes are pixels at 1080 lines and scale with the stage's height."""

    font: str = "serif"
    size: int = 40
    color: str = "#e8e4da"
    background: str = "#050505"
    margin: float = 0.08  # of the stage's width and height
    line_spacing: float = 1.3
    align: str = "left"  # left | center
    fade_in: float = 0.0  # seconds each poem takes to appear (flick, reader, sentence)
    overflow: str = "shrink"  # shrink | page | scroll
    caption: bool = False
    caption_size: int = 20
    highlight: str = "#ffd37a"
    countdown: bool = True

    def font_path(self) -> Path:
        if self.font in NAMED_FONTS:
            return FONTS_DIR / NAMED_FONTS[self.font]
        return Path(self.font)

    @classmethod
    def from_table(cls, t: Table) -> Look:
        d = cls()
        font = t.str("font", d.font)
        if font not in NAMED_FONTS:
            p = Path(font)
            if not p.is_absolute():
                p = (Path(t.file).parent / p) if (Path(t.file).parent / p).exists() else FONTS_DIR.parent.parent / p
            if p.suffix.lower() not in (".ttf", ".otf") or not p.exists():
                raise t.error("font", font, "serif, sans, mono, or an existing .ttf/.otf file")
            font = str(p)
        cols = {}
        for key in ("color", "background", "highlight"):
            v = t.str(key, getattr(d, key))
            if not _COLOUR.match(v):
                raise t.error(key, v, "a colour as \"#rrggbb\"")
            cols[key] = v
        look = cls(
            font=font,
            size=t.int("size", d.size, lo=6, hi=400),
            margin=t.float("margin", d.margin, lo=0.0, hi=0.4),
            line_spacing=t.float("line_spacing", d.line_spacing, lo=0.8, hi=4.0),
            align=t.str("align", d.align, ("left", "center")),
            fade_in=t.float("fade_in", d.fade_in, lo=0.0, hi=30.0),
            overflow=t.str("overflow", d.overflow, ("shrink", "page", "scroll")),
            caption=t.bool("caption", d.caption),
            caption_size=t.int("caption_size", d.caption_size, lo=6, hi=200),
            countdown=t.bool("countdown", d.countdown),
            **cols,
        )
        t.check_unknown()
        return look

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Look:
        if not d:
            return cls()
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)
