"""The stage's window, its renderer and the poet's monitor, for one session (frame thread only)."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path

from performance.stage.view import StageState

log = logging.getLogger("lectern.play")


class Display:
    """Opens the stage (or falls back to the terminal), draws each frame, presents it."""

    def __init__(self, args, setlist) -> None:
        self.args, self.setlist = args, setlist
        self.window = None
        self.terminal = False
        self.size = args.window or (1920, 1080)
        self.renderer = None
        self.stage_state = None
        self.monitor = None
        self.last_view = None
        self.frame_changed = True
        self._last_view_key = None

    # ---- set-up ----------------------------------------------------------------------------------
    def open(self) -> None:
        """The window at once, dark, before models load; the terminal when there is no display."""
        if self.args.headless:
            os.environ["SDL_VIDEODRIVER"] = "dummy"
            os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        os.environ.setdefault("SDL_VIDEO_ALLOW_SCREENSAVER", "0")
        # The stage draws in software and presents a finished picture. SDL's default would upload it
        # through a GL renderer, which on a machine without a GPU driver (Xvfb, many projector PCs)
        # is Mesa's llvmpipe: 12-48 ms per present on 2 cores, and the window is destroyed and
        # recreated to get a GL context. A plain X11 (XShm) framebuffer presents in well under 1 ms.
        os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")
        # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
        from performance.stage.window import StageWindow, display_available

        if not display_available(self.args.headless):  # SDL would open an invisible window nobody sees
            print("no display could be opened (no DISPLAY or WAYLAND_DISPLAY); performing on the terminal instead",
                  file=sys.stderr)
            self.terminal = True
            return
        # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
        import pygame

        try:
            pygame.display.init()
            pygame.font.init()
            self.window = StageWindow(self.size, fullscreen=not (self.args.headless or self.args.window),
                                      display=self.args.display, headless=self.args.headless)
            self.window.open()
            self.size = self.window.size
            self._loading_frame()
        except pygame.error as e:
            print(f"no display could be opened ({e}); performing on the terminal instead", file=sys.stderr)
            self.terminal = True
            self.window = None

    @property
    def screen(self):
        """The surface the stage draws on this frame (None on the terminal)."""
        return self.window.surface if self.window is not None else None

    def _loading_frame(self) -> None:
        """Quiet and dark while models load: never a void or garbage."""
        # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
        import pygame

        surface = self.window.surface
        surface.fill((0, 0, 0))
        try:
            # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
            from performance.stage.fonts import FALLBACK_FONT

            font = pygame.font.Font(str(FALLBACK_FONT), max(24, round(self.size[1] * 0.022)))
            text = font.render("·  ·  ·", True, (90, 90, 90))
            surface.blit(text, text.get_rect(center=(self.size[0] // 2, self.size[1] // 2)))
        except Exception:  # a missing font must not keep the window from appearing
            log.debug("loading frame without text", exc_info=True)
        self.window.flip()
        pygame.event.pump()

    def start_stage(self) -> None:
        """The stage's state and renderer (none on the terminal)."""
        if self.terminal:
            return
        # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
        from performance.stage.draw import StageRenderer

        self.stage_state = StageState()
        self.renderer = StageRenderer(self.size)

    def open_monitor(self) -> None:
        """The poet's confidence monitor, when the options or the setlist ask for one."""
        display = self.args.monitor if self.args.monitor is not None else self.setlist.monitor
        if display is None or self.screen is None:
            return
        # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
        from performance.stage.monitor import Monitor

        stage = self.window.window if self.window is not None else None
        x, y = stage.position if stage is not None else (0, 0)
        self.monitor = Monitor.open(display, self.args.display, (x, y, *self.size))
        if stage is not None and not self.args.headless:
            try:
                stage.focus()  # keys are read from every window, but the stage keeps the focus
            except Exception:
                pass

    # ---- each frame ------------------------------------------------------------------------------
    def events(self) -> list:
        """This frame's input events for the controllers; window events are handled here."""
        if self.screen is None:
            return []
        # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
        import pygame

        window_events = (pygame.WINDOWSIZECHANGED, pygame.WINDOWRESIZED, pygame.WINDOWDISPLAYCHANGED,
                         pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE, pygame.WINDOWSHOWN, pygame.WINDOWRESTORED)
        out = []
        for ev in pygame.event.get():
            if self.monitor is not None and self.monitor.handles(ev):
                continue  # the monitor's own window events are not the stage's
            if ev.type in window_events:
                self.window_changed(self.window.handle(ev))
            else:
                out.append(ev)
        return out

    def window_changed(self, change) -> None:
        """The window's size changed (fullscreen toggle, window manager, a new display): lay out again."""
        if change is None or self.renderer is None:
            return
        # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
        from performance.stage.draw import StageRenderer

        self.size = change.size
        self.renderer = StageRenderer(self.size)
        self._last_view_key = None
        log.info("stage %s: %dx%d", change.reason, *self.size)

    def toggle_fullscreen(self) -> None:
        if self.window is not None:
            self.window_changed(self.window.toggle_fullscreen())

    def displays_changed(self) -> None:
        """Once a second: a projector unplugged or swapped re-enters fullscreen on what is there now."""
        if self.window is not None:
            self.window_changed(self.window.check_displays())

    def draw(self, now: float) -> None:
        if self.screen is None or self.renderer is None:
            return
        view = self.last_view = self.stage_state.frame(now)
        self.renderer.draw(self.screen, view)
        # what makes two frames differ: an event, a fade step, the countdown's second, the highlight and its word
        key = (view.version, round(view.brightness, 3),
               None if view.countdown is None else math.ceil(view.countdown - 1e-9),
               (view.columns[0].highlight, view.columns[0].word) if view.columns else None)
        self.frame_changed = key != self._last_view_key
        self._last_view_key = key

    def present(self) -> None:
        if self.window is not None:
            self.window.present(self.frame_changed, time.monotonic())

    def monitor_frame(self, snap, wall) -> float:
        """Draw and present the poet's monitor; its cost in seconds (counted in the frame's work)."""
        if self.monitor is None or snap is None:
            return 0.0
        # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
        from performance.stage.monitor import monitor_info

        t0 = time.perf_counter()
        self.monitor.frame(self.last_view, monitor_info(snap, wall))
        return time.perf_counter() - t0

    # ---- the end ---------------------------------------------------------------------------------
    def screenshot(self, path: Path | None) -> None:
        if not path or self.screen is None:
            return
        # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
        import pygame

        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self.screen, str(path))
        if self.monitor is not None and not self.monitor.closed:  # beside it: NAME.monitor.png
            pygame.image.save(self.monitor.window.get_surface(), str(path.with_suffix(".monitor" + path.suffix)))

    def close(self) -> None:
        if self.window is not None:
            # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
            import pygame

            self.window.close()
            pygame.quit()
        if self.terminal:
            sys.stdout.write("\n")
