"""The confidence monitor: a second window, on another screen, that only the poet sees.

It shows the poem being written in large type with the line being spoken marked, what comes next
(the scene standing by, the next pause or its countdown, a cue's countdown to its automatic start,
poem n of N, the next [[at]] firing), the
clock, and warnings (fallback model, OSC gone). It lives in the frame loop beside the stage, with a
renderer of its own (a `pygame.Window` of pygame-ce's multi-window API), and reads the same
StageView the stage reads plus a `MonitorInfo` the runtime builds; it never touches engine state.

Cheap by design, so the audience's frame rate does not move: it redraws and presents only when
what it shows changed (a revealed word, the spoken line, the clock's second), at most 4 times a
second, from cached lines already in the window's pixel format.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pygame

from performance.protocol.snapshot import Snapshot
from performance.show.font_probe import FONTS_DIR
from performance.show.programs import next_pause_text  # noqa: F401  (the monitor's pause line; tests)
from performance.stage.fonts import LRU, Fonts
from performance.stage.view import StageView

log = logging.getLogger("lectern.monitor")
BG = (16, 16, 18)
TEXT = (200, 200, 196)
DIM = (120, 120, 120)
SPOKEN = (255, 211, 122)
WARN = (255, 90, 80)
PAUSE = (255, 160, 60)
SANS = FONTS_DIR / "DejaVuSans.ttf"
MIN_REDRAW_S = 0.25  # at most 4 redraws a second: each is a full-window upload on X11
_CENTERED_DISPLAY = 0x2FFF0000  # SDL_WINDOWPOS_CENTERED_DISPLAY(n) = this | n


@dataclass(frozen=True)
class MonitorInfo:
    """What the poet needs besides the poem; plain strings, built by the runtime each frame."""

    clock: str  # "17:44:58", the engine's wall time
    scene: str  # "3 vintages"
    standby: str  # "4 closing", "" when nothing stands by
    poem: str  # "poem 12 of 100"
    next_pause: str  # "pause after poem 15 (20 s)", "" when the scene has none
    next_at: str  # "17:45 scene closing", "" without a timetable
    warnings: tuple[str, ...] = ()
    cue: str = ""  # "next 2 b in 0:06 (post-wait)": the next automatic start, "" when GO starts it


def monitor_info(snap: Snapshot, wall) -> MonitorInfo:
    """The MonitorInfo from the state snapshot and the engine's wall time (never the Engine)."""
    n, of = snap.poem
    sb_n, sb_name = snap.standby
    return MonitorInfo(
        clock=f"{wall:%H:%M:%S}", scene=f"{snap.scene[0]} {snap.scene[1]}",
        standby=f"{sb_n} {sb_name}" if sb_n else "", poem=f"poem {n} of {of}" if of else f"poem {n}",
        next_pause=snap.next_pause, next_at=snap.next_at[0] if snap.next_at else "",
        # a refused edit by its file's name, not its path: the key, value and what is allowed must fit
        warnings=((f"edit refused: {snap.reload_error.partition(': ')[0].rsplit('/', 1)[-1]}: "
                   f"{snap.reload_error.partition(': ')[2]}",) if snap.reload_error else ()) + tuple(snap.errors[-2:])
        + tuple(snap.warnings[-1:]), cue=snap.cue_text(clock=True))


def placement(display: int, desktops: list[tuple[int, int]], stage_display: int,
              stage_rect: tuple[int, int, int, int]) -> tuple[tuple[int, int], tuple[int, int], bool]:
    """(position, size, fullscreen) for the monitor window; stage_rect = the stage's (x, y, w, h).

    A display of its own when SDL reports one (fullscreen there); else, on one wide desktop (an X
    screen SDL sees as one display, or Xvfb at 3840x1080), the wider free side beside a windowed
    stage; else a window."""
    if 0 <= display < len(desktops) and display != stage_display:
        pos = _CENTERED_DISPLAY | display
        return (pos, pos), desktops[display], True
    w, h = desktops[0] if desktops else (0, 0)
    x, _, sw, _ = stage_rect
    right, left = w - (x + sw), x
    if max(right, left) >= 640:
        return ((x + sw, 0), (right, h), False) if right >= left else ((0, 0), (left, h), False)
    log.warning("--monitor %d: no second display and no room beside the stage; a 1280x720 window", display)
    return (0, 0), (1280, 720), False


class Monitor:
    """The monitor window and its renderer. `frame(view, info)` once per frame from the loop."""

    def __init__(self, position: tuple[int, int], size: tuple[int, int], fullscreen: bool = False) -> None:
        self.window = pygame.Window("Lectern monitor", size, position=position, borderless=not fullscreen)
        if fullscreen:
            self.window.set_fullscreen(desktop=True)
        self.size = self.window.size
        self.fonts = Fonts()
        self._lines = LRU(512, max_bytes=32 << 20)
        self._wraps = LRU(512)
        self._key: tuple | None = None
        self._last = -1e9
        self.redraws = 0
        self.closed = False

    @classmethod
    def open(cls, display: int, stage_display: int, stage_rect: tuple[int, int, int, int]) -> Monitor | None:
        """Open on `display`; None (and one log line) when no window can be made: the show goes on."""
        try:
            pos, size, full = placement(display, pygame.display.get_desktop_sizes(), stage_display, stage_rect)
            return cls(pos, size, full)
        except pygame.error as e:
            log.error("confidence monitor unavailable: %s", e)
            return None

    def handles(self, ev: pygame.event.Event) -> bool:
        """Window events of the monitor's own window (the stage must not react to them); closing
        it closes only the monitor."""
        if getattr(ev, "window", None) is not self.window or ev.type in (pygame.KEYDOWN, pygame.KEYUP):
            return False
        if ev.type == pygame.WINDOWCLOSE:
            self.close()
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.window.destroy()

    # -- drawing ---------------------------------------------------------------------------------
    def frame(self, view: StageView | None, info: MonitorInfo) -> bool:
        """Redraw and present when something shown changed; True when it did."""
        if self.closed:
            return False
        poem, highlight = _current_poem(view)
        countdown = None if view is None or view.countdown is None else int(view.countdown + 0.999)
        key = (poem, highlight, countdown, info)
        t = time.monotonic()
        if key == self._key or t - self._last < MIN_REDRAW_S:
            return False  # unchanged, or redrawn a moment ago: the change shows on a later frame
        self._key, self._last = key, t
        surface = self.window.get_surface()
        self.draw(surface, poem, highlight, countdown, info)
        self.window.flip()
        self.redraws += 1
        return True

    def _text(self, text: str, size: int, rgb: tuple[int, int, int], target: pygame.Surface) -> pygame.Surface:
        """A rendered line, opaque, in the target's pixel format (a blit then converts nothing)."""
        def make() -> pygame.Surface:
            surf = self.fonts.get(SANS, size).render(text, True, rgb, BG)
            return surf.convert(target) if surf.get_bitsize() != target.get_bitsize() else surf

        return self._lines.get_or((text, size, rgb, target.get_bitsize()), make)

    def _fit(self, text: str, size: int, max_w: int) -> str:
        """text, cut with an ellipsis to fit max_w pixels."""
        if self.fonts.width(SANS, size, text) <= max_w:
            return text
        while len(text) > 1 and self.fonts.width(SANS, size, text + "…") > max_w:
            text = text[:-1]
        return text.rstrip() + "…"

    def _wrapped(self, line: str, size: int, max_w: int) -> list[str]:
        """One source line word-wrapped (cached: while a poem is typed only its last line changes)."""
        return self._wraps.get_or((line, size, max_w),
                                  lambda: _wrap_line(line, lambda s: self.fonts.width(SANS, size, s), max_w))

    def draw(self, surface: pygame.Surface, poem: str, highlight: int | None, countdown: int | None,
             info: MonitorInfo) -> None:
        """The whole monitor picture: header, poem, footer."""
        w, h = surface.get_size()
        u = max(12, h // 54)  # a unit: 20 px at 1080
        surface.fill(BG)
        # header: the clock, then what plays now and what comes next, one row each
        clock = self._text(info.clock, 3 * u, TEXT, surface)
        surface.blit(clock, (u, u))
        x = clock.get_width() + 3 * u
        now = f"now  {info.scene}  ·  {info.poem}"
        nxt = f"next  {info.standby or '—'}" + (f"  ·  at {info.next_at}" if info.next_at else "")
        room = w - x - u
        surface.blit(self._text(self._fit(now, int(1.6 * u), room), int(1.6 * u), TEXT, surface), (x, u))
        surface.blit(self._text(self._fit(nxt, int(1.6 * u), room), int(1.6 * u), DIM, surface), (x, int(3.1 * u)))
        top, bottom = 6 * u, h - 6 * u
        surface.fill(DIM, (u, top - u // 2, w - 2 * u, 2))
        # the poem, large, the spoken line marked; the newest lines when it does not fit
        size = int(2.6 * u)
        step = int(size * 1.3)
        lines = _wrap(poem, lambda line: self._wrapped(line, size, w - 5 * u))
        fit = max(1, (bottom - top - u) // step)
        shown = lines[-fit:]
        y = top + u // 2
        for text, src in shown:
            spoken = highlight is not None and src == highlight
            if spoken:
                surface.fill(SPOKEN, (u, y + step // 8, u // 2, step - step // 4))
            if text:
                surface.blit(self._text(text, size, SPOKEN if spoken else TEXT, surface), (3 * u, y))
            y += step
        # footer: pause and countdown, warnings
        surface.fill(DIM, (u, bottom, w - 2 * u, 2))
        if countdown is not None:
            surface.blit(self._text(f"PAUSE  {countdown} s", 3 * u, PAUSE, surface), (u, bottom + u))
        elif info.cue:  # a cue's wait counting down to its automatic start
            surface.blit(self._text(info.cue.upper(), int(2.2 * u), PAUSE, surface), (u, bottom + int(1.2 * u)))
        elif info.next_pause:
            surface.blit(self._text(info.next_pause, int(1.6 * u), TEXT, surface), (u, bottom + int(1.5 * u)))
        # the warnings beside it (the whole width when nothing is there), each wrapped to two rows at
        # most: a refused edit's line must show its key and value
        x, ws = (w // 2 if countdown is not None or info.cue or info.next_pause else u), int(1.3 * u)
        rows = [r for warning in info.warnings[-3:] for r in self._wrapped(f"! {warning}"[:200], ws, w - x - u)[:2]]
        for k, row in enumerate(rows[:3]):
            surface.blit(self._text(row, ws, WARN, surface), (x, bottom + u + k * int(1.6 * u)))


def _current_poem(view: StageView | None) -> tuple[str, int | None]:
    """The poem being written (first column) and the index of its non-blank line being spoken."""
    if view is None or not view.columns or not view.columns[0].poems:
        return "", None
    col = view.columns[0]
    p = col.poems[-1]
    hl = col.highlight[1] if col.highlight is not None and col.highlight[0] == p.n else None
    return p.text.strip("\n"), hl


def _wrap(poem: str, wrap_line) -> list[tuple[str, int | None]]:
    """(display line, index of its non-blank source line or None for a blank one)."""
    out: list[tuple[str, int | None]] = []
    src = 0
    for line in poem.split("\n"):
        if not line.strip():
            out.append(("", None))
            continue
        out += [(part, src) for part in wrap_line(line)]
        src += 1
    return out


def _wrap_line(line: str, width, max_w: int) -> list[str]:
    """Greedy word wrap of one line to max_w pixels (a single long word overflows)."""
    out, cur = [], ""
    for word in line.split(" "):
        cand = f"{cur} {word}" if cur else word
        if cur and width(cand) > max_w:
            out.append(cur)
            cur = word
        else:
            cur = cand
    out.append(cur)
    return out
