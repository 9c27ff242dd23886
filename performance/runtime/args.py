"""`run.py play`'s command-line arguments and their validators (shared with `supervise` and `still`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
        if w < 64 or h < 64 or w > 16384 or h > 16384:
            raise ValueError
        return w, h
    except ValueError:
        raise argparse.ArgumentTypeError(f"--window/--size {text!r}: expected WxH, e.g. 1280x720") from None


def _start_wall(text: str):
    from datetime import datetime

    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--start-wall {text!r}: expected an ISO time, e.g. 2026-11-27T09:00") from None
    return t if t.tzinfo else t.astimezone()


def _ranged(kind: type, lo: float, hi: float, lo_open: bool = False):
    """An argparse type: a finite number of `kind` in [lo, hi] (lo excluded when lo_open)."""

    def parse(text: str) -> float:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo):
            raise argparse.ArgumentTypeError(f"{text!r}: allowed {'> ' if lo_open else 'from '}{lo:g}"
                                             f"{' and <= ' if lo_open else ' to '}{hi:g}")
        return v

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _passcode(text: str) -> str:
    """--osc-passcode: an empty code would silently turn protection off."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty passcode protects nothing; give a code or leave the option out")
    if len(text) > 256:
        raise argparse.ArgumentTypeError("at most 256 characters")
    return text


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
    g = p.add_argument_group("OSC")
    g.add_argument("--osc-host", default="127.0.0.1", metavar="H", help="address to listen on (default loopback)")
    g.add_argument("--osc-port", type=_ranged(int, 0, 65535), default=9000, metavar="P", help="UDP port (default 9000; 0 = off)")
    g.add_argument("--osc-allow", metavar="IP[,IP]", help="only these sender addresses may steer")
    g.add_argument("--osc-passcode", type=_passcode, metavar="CODE", help="senders must /lectern/connect CODE first")
    g.add_argument("--no-advertise", action="store_true",
                   help="do not announce OSC over Zeroconf/Bonjour (_osc._udp; only done beyond loopback)")
    g.add_argument("--osc-rate", type=_ranged(float, 1, 1e7), default=200.0, metavar="N",
                   help="messages per second one sender may send (default 200; more are dropped and counted)")
    g = p.add_argument_group("output")
    g.add_argument("--record", type=Path, metavar="OUT.mp4", help="record the session as video with sound")
    g.add_argument("--audio-out", type=Path, metavar="OUT.wav", help="write the audio mix to a WAV file")
    g.add_argument("--audio-device", metavar="NAME|INDEX", help="sound output device")
    g.add_argument("--transcript-dir", type=Path, default=Path("sessions"), metavar="DIR", help="where transcripts go (default sessions/)")
    g.add_argument("--stats-json", type=Path, metavar="FILE", help="write frame statistics as JSON at the end")
    g.add_argument("--screenshot", type=Path, metavar="FILE", help="save the last frame as PNG at the end")
    from performance.controllers.controllers import add_controller_arguments

    add_controller_arguments(p)
