"""argparse types that check a value and say in one line what is allowed (used by every command)."""

from __future__ import annotations

import argparse
import math
from datetime import datetime


def window_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
        if w < 64 or h < 64 or w > 16384 or h > 16384:
            raise ValueError
        return w, h
    except ValueError:
        raise argparse.ArgumentTypeError(f"--window/--size {text!r}: expected WxH, e.g. 1280x720") from None


def start_wall(text: str):
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--start-wall {text!r}: expected an ISO time, e.g. 2026-11-27T09:00") from None
    return t if t.tzinfo else t.astimezone()


def ranged(kind: type, lo: float, hi: float, lo_open: bool = False):
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


def passcode(text: str) -> str:
    """--osc-passcode: an empty code would silently turn protection off."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty passcode protects nothing; give a code or leave the option out")
    if len(text) > 256:
        raise argparse.ArgumentTypeError("at most 256 characters")
    return text
