"""`run.py play`'s command-line arguments and their validators (shared with `supervise` and `still`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from performance.cli_types import ranged as _ranged
from performance.cli_types import start_wall as _start_wall
from performance.cli_types import window_size as _size
from performance.controllers.registry import add_controller_arguments


def add_play_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("setlist", nargs="?", default="setlists/demo.toml", help="setlist file (default setlists/demo.toml)")
    g = p.add_argument_group("display")
    g.add_argument("--window", type=_size, metavar="WxH", help="a window of this size instead of fullscreen")
    g.add_argument("--headless", action="store_true", help="no display, no audio device (SDL dummy), 1920x1080 unless --window")
    g.add_argument("--display", type=_ranged(int, 0, 64), metavar="N", default=0, help="which screen to use (0 = first)")
    g.add_argument("--monitor", type=_ranged(int, 0, 64), metavar="N",
                   help="confidence monitor for the poet on screen N (overrides the setlist's monitor = { display = N })")
    g = p.add_argument_group("time")
    g.add_argument("--duration", type=_ranged(float, 0, 1e9, lo_open=True), metavar="S", help="stop after S seconds of engine time")
    g.add_argument("--time-scale", type=_ranged(float, 0, 10000, lo_open=True), default=1.0, metavar="X", help="run the timeline X times faster than the wall clock")
    g.add_argument("--start-wall", type=_start_wall, metavar="ISO",
                   help="the engine's wall clock starts at this local time (rehearse a day's [[at]] timetable and hours)")
    g.add_argument("--scene", metavar="N|NAME", help="start at this scene instead of the setlist's start")
    g.add_argument("--seed", type=_ranged(int, 0, 2**63 - 1), metavar="S", help="session seed (same seed, same set)")
    g = p.add_argument_group("operation")
    g.add_argument("--quiet", action="store_true", help="no operator view in the terminal")
    g.add_argument("--install", action="store_true", help="unattended installation: supervised, keyboard locked, opening hours")
    g.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    g = p.add_argument_group("output")
    g.add_argument("--record", type=Path, metavar="OUT.mp4", help="record the session as video with sound")
    g.add_argument("--audio-out", type=Path, metavar="OUT.wav", help="write the audio mix to a WAV file")
    g.add_argument("--audio-device", metavar="NAME|INDEX", help="sound output device")
    g.add_argument("--transcript-dir", type=Path, default=Path("sessions"), metavar="DIR", help="where transcripts go (default sessions/)")
    g.add_argument("--stats-json", type=Path, metavar="FILE", help="write frame statistics as JSON at the end")
    g.add_argument("--screenshot", type=Path, metavar="FILE", help="save the last frame as PNG at the end")
    add_controller_arguments(p)  # OSC, MIDI, the remote, the console: each controller's own
