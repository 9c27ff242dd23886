"""The audience's window: one SDL window for the whole session, windowed or fullscreen.

Why a class of its own: round 1 answered every expose event with `set_mode`, which on a real X
server destroys and rebuilds the window, which exposes it again — a loop that ran once per frame
(black screens, a new X window id every frame, lost keys). Here the window is created once and
only ever changed in place: an expose asks for nothing (the frame loop repaints every frame
anyway), a size change from the window manager or a fullscreen toggle only fetches the new
surface, and a real display change (the set of screens or their resolutions differ from what we
saw) re-enters fullscreen once, at the new size.

It uses pygame-ce's `pygame.Window` (SDL2 windows), whose fullscreen toggles keep the same
window, so its X window id never changes during a session.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

import pygame

log = logging.getLogger("lectern.stage.window")

# SDL_WINDOWPOS_CENTERED_DISPLAY(n): SDL's way to say "centred on display n" in one coordinate
_CENTERED_ON = 0x2FFF0000


@dataclass(frozen=True)
class WindowChange:
    """What a window event changed: the stage must lay out again when `size` differs."""

    size: tuple[int, int]
    reason: str


class StageWindow:
    """Owns the stage's SDL window and its surface; only the frame loop's thread touches it."""

    def __init__(self, size: tuple[int, int], *, fullscreen: bool, display: int = 0, headless: bool = False,
                 title: str = "Lectern") -> None:
        self.windowed_size = (int(size[0]), int(size[1]))
        self.want_fullscreen = fullscreen and not headless
        self.display = display
        self.headless = headless
        self.title = title
        self.window: pygame.Window | None = None
        self.surface: pygame.Surface | None = None
        self.size = self.windowed_size
        self._windowed_pos: tuple[int, int] | None = None
        self._desktops: list[tuple[int, int]] = []
        self.fullscreen = False
        self._stale = True
        self._last_present = -1e9

    # -- opening ---------------------------------------------------------------------------------
    def open(self) -> None:
        """Create the window (raises pygame.error when no display can be opened)."""
        if not pygame.display.get_init():
            pygame.display.init()
        self._desktops = list(pygame.display.get_desktop_sizes())
        display = self._pick_display()
        pos = (_CENTERED_ON | display, _CENTERED_ON | display)
        if self.want_fullscreen:
            self.size = self._desktops[display]
            self.window = pygame.Window(self.title, self.size, pos, fullscreen_desktop=True)
            self.fullscreen = True
        else:
            self.window = pygame.Window(self.title, self.windowed_size, pos)
        self.surface = self.window.get_surface()
        self.size = self.surface.get_size()
        if not self.headless:
            try:
                self.window.focus()  # keys go to the stage even where no window manager gives focus
            except pygame.error:
                pass
        pygame.display.set_allow_screensaver(False)
        pygame.mouse.set_visible(False)

    def _pick_display(self) -> int:
        n = max(1, len(self._desktops))
        if 0 <= self.display < n:
            return self.display
        log.warning("--display %s: only %d display(s); using 0", self.display, n)
        return 0

    @property
    def x11_id(self) -> int | None:
        """The X window id (for tests and xdotool), or None off X11."""
        try:
            return int(self.window.handle) if self.window is not None else None
        except (AttributeError, TypeError, pygame.error):
            return None

    # -- changes ---------------------------------------------------------------------------------
    def handle(self, ev: pygame.event.Event) -> WindowChange | None:
        """Fold one window event in; returns a change when the stage must lay out again."""
        if ev.type in (pygame.WINDOWSIZECHANGED, pygame.WINDOWRESIZED):
            return self._refresh("resized")
        if ev.type == pygame.WINDOWDISPLAYCHANGED:
            return self.check_displays("moved to another display")
        if ev.type in (pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE, pygame.WINDOWSHOWN, pygame.WINDOWRESTORED):
            self._stale = True  # the system lost our pixels: present the next frame even if unchanged
        return None

    def check_displays(self, reason: str = "display changed") -> WindowChange | None:
        """Called about once a second: a projector unplugged, swapped or set to another resolution
        shows as a different list of desktop sizes. Fullscreen is re-entered once, at the new size."""
        now = list(pygame.display.get_desktop_sizes())
        if now == self._desktops:
            return None
        log.warning("%s: screens %s -> %s", reason, self._desktops, now)
        self._desktops = now
        if self.fullscreen and self.window is not None:
            display = self._pick_display()
            try:
                self.window.set_windowed()
                self.window.size = now[display]
                self.window.set_fullscreen(desktop=True)
            except pygame.error as e:
                log.error("fullscreen again failed: %s", e)
        return self._refresh(reason)

    def toggle_fullscreen(self) -> WindowChange | None:
        """`f`: fullscreen ↔ window. Back in a window, the old size and position come back."""
        if self.window is None or self.headless:
            return None
        try:
            if self.fullscreen:
                self.window.set_windowed()
                self.window.size = self.windowed_size
                if self._windowed_pos is not None:
                    self.window.position = self._windowed_pos
                self.fullscreen = False
            else:
                self.windowed_size = self.window.size
                self._windowed_pos = self.window.position
                self.window.set_fullscreen(desktop=True)
                self.fullscreen = True
        except pygame.error as e:
            log.error("fullscreen toggle failed: %s", e)
        return self._refresh("fullscreen" if self.fullscreen else "windowed")

    def _refresh(self, reason: str) -> WindowChange | None:
        if self.window is None:
            return None
        surface = self.window.get_surface()
        size = surface.get_size()
        self.surface = surface
        self._stale = True
        if size == self.size:
            return None
        self.size = size
        return WindowChange(size, reason)

    # -- each frame ------------------------------------------------------------------------------
    def present(self, changed: bool, now: float) -> bool:
        """Show the frame just drawn, when it differs from what the window shows. On X11 a present
        is a round trip to the server (10-20 ms on a loaded 2-core machine, whatever the area), so
        an unchanged frame is not sent again; after an expose or resize it always is, and at least
        twice a second in any case. Returns whether it presented."""
        if not (changed or self._stale or now - self._last_present >= 0.5):
            return False
        self._stale = False
        self._last_present = now
        self.flip()
        return True

    def flip(self) -> None:
        """Present the surface. A window the system took away is fetched again, not rebuilt."""
        if self.window is None:
            return
        try:
            self.window.flip()
        except pygame.error:
            self._refresh("surface lost")

    def close(self) -> None:
        if self.window is not None:
            try:
                self.window.destroy()
            except pygame.error:
                pass
            self.window = None


def display_available(headless: bool) -> bool:
    """False where SDL would open an invisible window nobody sees (a server, an SSH shell)."""
    if headless or not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("SDL_VIDEODRIVER"))
