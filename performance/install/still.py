"""The built-in still screen: what a gallery shows when its setlist and its safe setlist both fail.

No setlist, no model, no font file: pygame's built-in font on a dark screen, and a heartbeat so the
supervisor knows it is alive. It runs until asked to stop (SIGINT/SIGTERM); the supervisor tries the
real setlist again after a while, as it does from the safe one.
Run as `python -m performance.install.still [play options...]` (display options are honoured).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from performance.install.heartbeat import Heartbeat
from performance.runtime.args import add_play_arguments

TEXT = "Lectern is resting. Poems will be back soon."


def main(argv: list[str]) -> int:
    """Show the still screen until a signal; 0 when stopped."""

    p = argparse.ArgumentParser(add_help=False)
    add_play_arguments(p)
    args, _ = p.parse_known_args(argv)
    if args.headless:
        os.environ["SDL_VIDEODRIVER"] = "dummy"
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
    import pygame


    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pygame.display.init()
    pygame.font.init()
    size = args.window or ((1920, 1080) if args.headless else (0, 0))
    flags = 0 if (args.window or args.headless) else pygame.FULLSCREEN
    screen = pygame.display.set_mode(size, flags)
    w, h = screen.get_size()
    font = pygame.font.Font(None, max(16, h // 24))  # pygame's own font: no file that could be broken
    screen.fill((10, 10, 12))
    line = font.render(TEXT, True, (200, 196, 186))
    screen.blit(line, ((w - line.get_width()) // 2, (h - line.get_height()) // 2))
    pygame.display.flip()
    beat = Heartbeat()
    beat.ready()
    while not stop.is_set():
        for e in pygame.event.get():
            if e.type == pygame.QUIT:
                stop.set()
        beat.beat()
        stop.wait(0.25)
    beat.stop()
    pygame.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
