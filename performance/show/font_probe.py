"""Is a font file safe to draw with? Asked of a child process, so a font that crashes the renderer
(SDL_ttf and FreeType can segfault on a corrupt file) takes down the child, never the show.

A verdict is cached per (file, size in bytes, modification time): a scene's font is probed once at
`check` and once when the scene is loaded, never in the frame loop. Shipped fonts are trusted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FONTS_DIR = REPO / "assets" / "fonts"  # the fonts shipped with Lectern (licences beside them)

PROBE_TIMEOUT_S = 20.0
MAX_FONT_BYTES = 64 << 20
_SAMPLE = "The quick brown fox, ÀÉÎõü — 0123"
_CHILD = f"""
import os, sys
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ["PYGAME_HIDE_SUPPORT_PROMPT"] = "1"
import pygame, pygame.font, pygame.freetype
pygame.font.init(); pygame.freetype.init()
for size in (10, 34, 120):
    f = pygame.font.Font(sys.argv[1], size)
    f.render({_SAMPLE!r}, True, (255, 255, 255)); f.size({_SAMPLE!r}); f.get_linesize()
face = pygame.freetype.Font(sys.argv[1], 16)
face.get_metrics({_SAMPLE!r})
"""
_verdicts: dict[tuple[str, int, int], str | None] = {}


def probe_font(path: str | Path) -> str | None:
    """None when the font opens and renders; else why not, in a few words (no newline)."""
    p = Path(path)
    try:
        st = p.stat()
        real = str(p.resolve())
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if Path(real).parent == FONTS_DIR.resolve():
        return None
    if st.st_size > MAX_FONT_BYTES:
        return f"{st.st_size} bytes; at most {MAX_FONT_BYTES} for a font"
    key = (real, st.st_size, st.st_mtime_ns)
    if key in _verdicts:
        return _verdicts[key]
    try:
        r = subprocess.run([sys.executable, "-c", _CHILD, real], capture_output=True, text=True,
                           timeout=PROBE_TIMEOUT_S, env={**os.environ, "SDL_AUDIODRIVER": "dummy"})
        if r.returncode == 0:
            verdict = None
        elif r.returncode < 0:
            verdict = f"crashes the font renderer (signal {-r.returncode})"
        else:
            last = (r.stderr.strip().splitlines() or ["unknown error"])[-1]
            verdict = f"cannot be rendered ({last[:120]})"
    except subprocess.TimeoutExpired:
        verdict = f"rendering a test line took more than {PROBE_TIMEOUT_S:g} s"
    except OSError as e:
        verdict = f"could not be test-rendered ({e.strerror})"
    _verdicts[key] = verdict
    return verdict
