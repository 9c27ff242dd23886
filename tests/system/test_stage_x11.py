"""The stage on a real X server (Xvfb + SDL's x11 driver), windowed and fullscreen, with and without a
window manager: what the X server shows (not our own surface), the window's identity, the frame
rate, and real key presses sent through XTEST. The headless tests stay for speed; these are the proof.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from xserver import XServer, lit_pixels, missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"X tools missing: {missing_tools()} (make setup)")

SETLIST = "setlists/safe.toml"  # markov, reader layout: loads in a fraction of a second


def start_play(x: XServer, tmp_path: Path, *extra: str, setlist: str = SETLIST, duration: float = 18,
               ) -> subprocess.Popen:
    cmd = [sys.executable, "run.py", "play", setlist, "--duration", str(duration), "--quiet", "--osc-port", "0",
           "--transcript-dir", str(tmp_path / "sessions"), "--stats-json", str(tmp_path / "stats.json"), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=x.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 60, stop: bool = False) -> str:
    """Wait for the session's end (or end it like a Ctrl+C in its terminal): its stderr."""
    if stop and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]
    return err


def events(tmp_path: Path) -> list[dict]:
    (jsonl,) = (tmp_path / "sessions").glob("generated-*.jsonl")
    return [json.loads(line) for line in jsonl.read_text().splitlines()]


def wait_for_text(x: XServer, box, timeout: float = 20) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if lit_pixels(x.screenshot(), box) > 200:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError("no text appeared in the window")


def left_edge(img, box) -> int:
    """The x of the leftmost text pixel inside box, in screen coordinates."""
    x, y, w, h = box
    cols = (img[y:y + h, x:x + w].max(axis=2) >= 120).any(axis=0).nonzero()[0]
    assert len(cols), "text in the box"
    return x + int(cols[0])


def box_of(win: dict) -> tuple[int, int, int, int]:
    return win["x"], win["y"], win["w"], win["h"]


@pytest.mark.parametrize("window_manager", [False, True], ids=["bare-x", "openbox"])
def test_windowed_stage_shows_text_keeps_its_window_and_frame_rate(tmp_path, window_manager):
    with XServer(1920, 1080, window_manager=window_manager) as x:
        proc = start_play(x, tmp_path, "--window", "1280x720", duration=120)
        win = x.wait_window()
        wait_for_text(x, box_of(win))
        shots, ids = [], set()
        for i in range(10):
            now = x.windows()
            assert now, f"the window is gone: {proc.poll()} {proc.stderr.read() if proc.poll() is not None else ''}"
            ids.update(w["id"] for w in now)
            shots.append(lit_pixels(x.screenshot(tmp_path / f"shot{i}.png" if i == 5 else None), box_of(now[0])))
            time.sleep(0.6)
        err = finish(proc, stop=True)
    assert ids == {win["id"]}, "one window for the whole session"
    assert (win["w"], win["h"]) == (1280, 720)
    assert sum(n > 200 for n in shots) >= 9, shots
    assert "display changed" not in err
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["fps"] >= 50, stats
    assert (stats["width"], stats["height"]) == (1280, 720)


def test_fullscreen_fills_the_screen_and_f_toggles_both_ways(tmp_path):
    with XServer(1920, 1080, window_manager=True) as x:
        proc = start_play(x, tmp_path, "--window", "1280x720", duration=120)
        win = x.wait_window()
        wait_for_text(x, box_of(win))
        img_win = x.screenshot()
        x.key("f", window=win["id"])
        time.sleep(1.5)
        full = x.windows()[0]
        img = x.screenshot(tmp_path / "fullscreen.png")
        x.key("f", window=full["id"])
        time.sleep(1.5)
        back = x.windows()[0]
        img_back = x.screenshot()
        err = finish(proc, stop=True)
    assert full["id"] == back["id"] == win["id"]
    assert (full["w"], full["h"], full["x"], full["y"]) == (1920, 1080, 0, 0)
    # the layout follows the new size: the text's left margin is the same fraction of the width
    margin_window = (left_edge(img_win, box_of(win)) - win["x"]) / win["w"]
    margin_full = left_edge(img, (0, 0, 1920, 1080)) / 1920
    assert margin_full == pytest.approx(margin_window, abs=0.03)
    assert (back["w"], back["h"]) == (1280, 720) and abs(back["x"] - win["x"]) <= 20 and abs(back["y"] - win["y"]) <= 40
    assert lit_pixels(img_back, box_of(back)) > 200
    assert "Warning" not in err and "display changed" not in err


def test_fullscreen_without_a_window_manager(tmp_path):
    with XServer(1600, 900, window_manager=False) as x:
        proc = start_play(x, tmp_path, duration=120)
        win = x.wait_window()
        wait_for_text(x, (0, 0, 1600, 900))
        ids = {w["id"] for _ in range(4) for w in x.windows() if time.sleep(0.5) is None}
        finish(proc, stop=True)
    assert ids == {win["id"]}
    assert (win["w"], win["h"], win["x"], win["y"]) == (1600, 900, 0, 0)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert (stats["width"], stats["height"]) == (1600, 900)


KEYS_SETLIST = """
name = "keys"
[[scene]]
name = "first"
layout = "stream"
model = "markov"
length = { lines = 4 }
pacing = { reveal = "words", rate = 6, hold = 2 }
[[scene]]
name = "second"
advance = "go"
layout = "stream"
model = "markov"
length = { lines = 4 }
pacing = { reveal = "words", rate = 6, hold = 2 }
"""


def test_every_key_through_the_x_server(tmp_path):
    setlist = tmp_path / "keys.toml"
    setlist.write_text(KEYS_SETLIST)
    with XServer(1920, 1080, window_manager=False) as x:
        proc = start_play(x, tmp_path, "--window", "960x540", setlist=str(setlist), duration=60)
        win = x.wait_window()
        wait_for_text(x, box_of(win))
        for key in ["space", "b", "p", "p", "Up", "Up", "Down", "0", "r", "k", "c", "Escape", "space"]:
            x.key(key, window=win["id"])
            time.sleep(0.35)
        t_quit = time.monotonic()
        x.key("ctrl+q", "ctrl+q", window=win["id"])
        proc.wait(20)
        quit_s = time.monotonic() - t_quit
        finish(proc)
    ev = events(tmp_path)
    keys = [(e["address"].removeprefix("/lectern/"), e["args"]) for e in ev
            if e["event"] == "command" and e["source"] == "key"]
    names = [k for k, _ in keys]
    assert names == ["go", "back", "pause", "resume", "temperature", "temperature", "temperature",
                     "temperature/release", "reseed", "keep", "caption", "panic", "go"], keys
    temps = [a[0] for k, a in keys if k == "temperature"]
    assert temps[1] == pytest.approx(temps[0] + 0.1) and temps[2] == pytest.approx(temps[1] - 0.1)
    assert any(e["event"] == "panic" for e in ev)
    assert any(e["event"] == "keep" for e in ev)
    assert quit_s < 5, "Ctrl+Q twice quits at once"
    assert ev[-1]["event"] == "session_end" and ev[-1]["t"] < 55
