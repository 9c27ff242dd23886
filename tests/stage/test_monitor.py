"""The confidence monitor: its picture (spoken line marked, pause countdown, warnings), where its
window goes, and a real run under Xvfb (one 3840x1080 screen: stage left, monitor right) with a
screenshot of the X root window."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time

import pygame
import pytest
from conftest import ROOT

from performance.stage.monitor import (
    BG,
    PAUSE,
    SPOKEN,
    WARN,
    Monitor,
    MonitorInfo,
    _wrap,
    _wrap_line,
    next_pause_text,
    placement,
)

INFO = MonitorInfo(clock="17:44:58", scene="3 vintages", standby="4 closing", poem="poem 12 of 100",
                   next_pause="pause after poem 15 (in 3), 20 s", next_at="17:45 scene closing",
                   warnings=("model default: missing — using markov",))


def colour_rows(surface: pygame.Surface, rgb: tuple[int, int, int], x0: int = 0, x1: int | None = None) -> set[int]:
    """Rows holding a pixel of exactly this colour (between columns x0 and x1)."""
    import numpy as np

    a = pygame.surfarray.array3d(surface)[x0:x1]  # (x, y, rgb)
    hit = np.all(a == np.array(rgb, dtype=a.dtype), axis=2)
    return set(np.nonzero(hit.any(axis=0))[0].tolist())


def test_next_pause_and_wrapping():
    assert next_pause_text(12, 5, 20, 100) == "pause after poem 15 (in 3), 20 s"
    assert next_pause_text(15, 5, 20, 100) == "pause after poem 20 (in 5), 20 s"
    assert next_pause_text(96, 5, 20, 100) == ""  # the last poem ends the scene, no pause
    assert next_pause_text(3, 0, 0, None) == ""
    lines = _wrap("one two three\n\nfour", lambda line: _wrap_line(line, lambda s: 10 * len(s), 80))
    assert lines == [("one two", 0), ("three", 0), ("", None), ("four", 1)]


def test_placement_prefers_a_display_of_its_own_then_the_room_beside_the_stage():
    pos, size, full = placement(1, [(1920, 1080), (1280, 1024)], 0, (0, 0, 1920, 1080))
    assert full and size == (1280, 1024) and pos[0] & 0xFFFF == 1
    assert placement(1, [(3840, 1080)], 0, (0, 0, 1920, 1080)) == ((1920, 0), (1920, 1080), False)
    assert placement(1, [(3840, 1080)], 0, (960, 0, 1920, 1080)) == ((2880, 0), (960, 1080), False)
    assert placement(1, [(3840, 1080)], 0, (1800, 0, 1920, 1080)) == ((0, 0), (1800, 1080), False)
    assert placement(1, [(1920, 1080)], 0, (0, 0, 1920, 1080)) == ((0, 0), (1280, 720), False)


def test_the_spoken_line_is_marked_and_the_pause_counts_down():
    pygame.display.init()
    pygame.font.init()
    try:
        mon = Monitor((0, 0), (960, 540))
        poem = "the sea is a grey mirror\nof old light\n\nand the wind walks over it"
        assert mon.frame(None, INFO)
        assert not mon.frame(None, INFO)  # nothing changed: no redraw, no present
        assert not mon.frame(None, dataclasses.replace(INFO, clock="17:44:59"))  # within 0.25 s of the last
        time.sleep(0.26)
        assert mon.frame(None, dataclasses.replace(INFO, clock="17:44:59"))
        surf = pygame.Surface((960, 540))
        mon.draw(surf, poem, 1, None, INFO)
        u = max(12, 540 // 54)  # as Monitor.draw sizes things
        step = int(int(2.6 * u) * 1.3)
        top = 6 * u + u // 2
        spoken = colour_rows(surf, SPOKEN)
        assert spoken and min(spoken) >= top + step and max(spoken) < top + 2 * step  # the 2nd line only
        assert colour_rows(surf, WARN)  # the warning shows
        assert not colour_rows(surf, PAUSE)
        mon.draw(surf, poem, None, 14, INFO)
        assert not colour_rows(surf, SPOKEN) and colour_rows(surf, PAUSE)  # "PAUSE 14 s"
        mon.close()
        assert not mon.frame(None, INFO)
    finally:
        pygame.display.quit()


def _free_display() -> int:
    for n in range(71, 99):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            return n
    pytest.skip("no free X display number")


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("Xvfb") or not shutil.which("import"), reason="needs Xvfb and imagemagick")
def test_monitor_beside_the_stage_under_a_real_x_server(tmp_path):
    n = _free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "3840x1080x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(f"/tmp/.X11-unix/X{n}"):
                break
            time.sleep(0.05)
        env = {**os.environ, "DISPLAY": f":{n}", "SDL_VIDEODRIVER": "x11", "SDL_AUDIODRIVER": "dummy"}
        setlist = tmp_path / "m.toml"
        setlist.write_text(f'name = "m"\nmonitor = {{ display = 1 }}\n\n[[scene]]\n'
                           f'file = "{ROOT / "scenes/markov-stream.toml"}"\n')
        play = subprocess.Popen([sys.executable, "run.py", "play", str(setlist), "--window", "1920x1080",
                                 "--duration", "25", "--quiet", "--osc-port", "0", "--transcript-dir",
                                 str(tmp_path / "s"), "--screenshot", str(tmp_path / "stage.png")],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(12):  # the X server's picture, until the stage shows a poem (a loaded machine is slow)
            time.sleep(1.5)
            if play.poll() is not None:
                break
            subprocess.run(["import", "-window", "root", str(tmp_path / "root.png")], env=env, check=True, timeout=30)
            shot = pygame.image.load(str(tmp_path / "root.png"))
            if len(colour_rows(shot, (232, 228, 218), 0, 2880)) > 10:
                break
        _, err = play.communicate(timeout=90)
        assert play.returncode == 0, err[-2000:]
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    root = pygame.image.load(str(tmp_path / "root.png"))
    assert root.get_size() == (3840, 1080)
    mon = pygame.image.load(str(tmp_path / "stage.monitor.png"))
    mw, mh = mon.get_size()
    assert mh == 1080 and 640 <= mw <= 1920  # the free side of the screen beside the windowed stage
    assert len(colour_rows(mon, (200, 200, 196))) > 40, "no text in the monitor's window"
    # on the X server: the monitor at the right edge (its background, the clock and text) ...
    assert root.get_at((3830, 1070))[:3] == BG
    assert len(colour_rows(root, (200, 200, 196), 3840 - mw, 3840)) > 40, "no monitor text on the screen"
    # ... and the audience's stage beside it, drawn (its text colour), not covered by the monitor
    assert len(colour_rows(root, (232, 228, 218), 0, 3840 - mw)) > 10, "no stage text on the screen"
