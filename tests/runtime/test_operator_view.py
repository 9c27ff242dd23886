"""The operator view read the way a performer reads it: in a real terminal (tmux), beside a real
stage window (Xvfb). Log lines must never scroll the table away; a warning that stays true (OSC
could not listen) stays visible; the table says panic and poem n of N."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from xserver import XServer, missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()) or shutil.which("tmux") is None,
                                reason="needs Xvfb, xdotool, tmux (make setup)")


def capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def test_operator_view_keeps_its_table_and_pins_warnings(tmp_path):
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))  # the OSC port is taken: the show goes on, the warning stays
    port = busy.getsockname()[1]
    setlist = tmp_path / "s.toml"
    setlist.write_text('name = "op"\n[[scene]]\nname = "counted"\nmodel = "markov"\npoems = 40\n'
                       'length = { lines = 2 }\npacing = { reveal = "words", rate = 20, hold = 0.3 }\n')
    session = f"lectern-op-{port}"
    with XServer(1280, 720) as x:
        env = x.env()
        cmd = (f"cd {ROOT} && DISPLAY={env['DISPLAY']} SDL_VIDEODRIVER=x11 SDL_AUDIODRIVER=dummy "
               f"{sys.executable} run.py play {setlist} --window 640x360 --duration 40 --osc-port {port} "
               f"--transcript-dir {tmp_path / 'sessions'}; sleep 30")
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd], check=True)
        try:
            win = x.wait_window()
            deadline = time.monotonic() + 20  # the table appears once the models are loaded (slower on a busy machine)
            first = capture(session)
            while " of 40" not in first and time.monotonic() < deadline:
                time.sleep(0.5)
                first = capture(session)
            x.key("Escape", window=win["id"])
            time.sleep(2)
            second = capture(session)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session])
            busy.close()
    for screen in (first, second):
        assert screen.count("Lectern") == 1, screen  # one table, redrawn in place
        assert "cannot listen" in screen, screen  # the pinned warning
        assert not any(line.startswith("20") and " WARNING " in line for line in screen.splitlines()), screen
    assert " of 40" in first, first
    assert "PANIC" in second, second
    log = next((tmp_path / "sessions" / "logs").glob("*.log")).read_text()
    assert "cannot listen" in log
