"""The /lectern OSC address table (contract: ARCHITECTURE.md), and `run.py osc` to print it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Address:
    """One /lectern command: its argument kind, the accepted range, and what it does."""

    name: str  # without the /lectern prefix
    args: str  # "" | "f" | "i" | "s" | "i|s" | "b"
    range: str
    does: str
    fader: bool = False  # bursts are coalesced: only the newest value waits for the engine
    bounds: tuple[float, float] | None = None  # floats are clamped into this range


COMMANDS = [
    Address("go", "", "", "start the scene standing by (after panic: resume with it)"),
    Address("back", "", "", "go to the previous scene (at the next boundary)"),
    Address("scene", "i|s", "1..N or a scene name", "jump to a scene (at the next boundary)"),
    Address("pause", "", "", "freeze the timeline"),
    Address("resume", "", "", "continue after pause or blackout"),
    Address("panic", "", "", "fade picture and sound to black; GO resumes"),
    Address("blackout", "", "", "black and silent at once; resume brings it back"),
    Address("temperature", "f", "0..3 (clamped)", "override the scene's temperature", fader=True,
            bounds=(0.0, 3.0)),
    Address("temperature/release", "", "", "back to the scene's temperature program"),
    Address("seed", "i", "0..2147483647", "start a new poem now with this seed"),
    Address("reseed", "", "", "start a new poem now with a fresh random seed"),
    Address("model", "s", "a model name under models/ or in the setlist", "write with this model from the next poem"
            " (an empty string releases it)"),
    Address("model/release", "", "", "the scenes' own models again"),
    Address("prompt", "s", "text", "start the next poem from this text (an empty string releases it)"),
    Address("prompt/release", "", "", "the scenes' own prompts again"),
    Address("speed", "f", "0.1..10 (clamped)", "reveal speed multiplier", fader=True,
            bounds=(0.1, 10.0)),
    Address("voice", "b", "0|1", "speech on/off"),
    Address("volume", "f", "0..1 (clamped)", "master volume", fader=True, bounds=(0.0, 1.0)),
    Address("sonify", "b", "0|1", "sonification on/off"),
    Address("keep", "", "", "append the current poem to harvest.txt"),
    Address("caption", "b", "0|1 (no argument: toggle)", "caption with model, temperature, seed"),
    Address("learn", "s", "an address, e.g. /lectern/temperature; off = cancel",
            "MIDI learn: the next control moved on the MIDI controller is bound to it"),
]
TCP_COMMANDS = frozenset({"go", "panic", "ping", "connect"})  # also accepted over TCP with SLIP framing
SESSION = [
    Address("connect", "s", "the passcode", "authorise this sender (when --osc-passcode is set)"),
    Address("ping", "", "", "answered with /lectern/pong"),
    Address("subscribe", "i", "a UDP port", "receive /lectern/reply and /lectern/state/... on that port "
            "(a remote sender first gets /lectern/token T there and repeats: subscribe PORT T)"),
    Address("unsubscribe", "", "", "stop receiving state"),
]
STATE = [
    ("state/scene", "i s", "scene number and name"),
    ("state/standby", "i s", "scene standing by (0 = none)"),
    ("state/poem", "i i", "poem n, of N (0 = open-ended)"),
    ("state/temperature", "f", "current temperature"),
    ("state/seed", "i", "current seed"),
    ("state/model", "s", "current model"),
    ("state/model_override", "s", "model set by /lectern/model (\"\" = none: the scene's)"),
    ("state/prompt_override", "s", "prompt set by /lectern/prompt (\"\" = none: the scene's)"),
    ("state/paused", "i", "1 while paused or blacked out"),
    ("state/voice", "i", "speech on"),
    ("state/volume", "f", "master volume"),
    ("state/health", "f f i i f", "uptime_s, fps, poems, restarts, rss_mb"),
]
TYPE_NAMES = {"": "—", "f": "float", "i": "int", "s": "string", "i|s": "int or string", "b": "0|1"}


def table_text() -> str:
    """The table as `python run.py osc` prints it: address, argument type, what it does [range]."""
    lines = ["Lectern OSC (UDP; default 127.0.0.1:9000; prefix /lectern)", "", "Commands (each answered with "
             "/lectern/reply <address> ok|error <detail>):"]
    for a in COMMANDS + SESSION:
        rng = f" [{a.range}]" if a.range else ""
        lines.append(f"  /lectern/{a.name:<22} {TYPE_NAMES[a.args]:<14} {a.does}{rng}")
    lines += ["", "State, pushed to subscribers on change and at least once a second:"]
    for name, types, does in STATE:
        lines.append(f"  /lectern/{name:<22} {types:<14} {does}")
    tcp = " ".join(f"/lectern/{n}" for n in sorted(TCP_COMMANDS))
    lines += ["", "Ints are accepted for floats and whole floats for ints (TouchOSC sends floats); 0|1 reads",
              "any number (>= 0.5 is on). A bundle with a future timetag is applied when it falls due.",
              "Senders are known by IP address: --osc-allow IP|NET[,...] drops all others, --osc-passcode",
              "asks each for /lectern/connect first, --osc-rate caps datagrams per second per sender.",
              f"TCP on the same port, SLIP-framed (OSC 1.1): {tcp}."]
    return "\n".join(lines)


def register_osc(sub: argparse._SubParsersAction) -> None:
    """Add `run.py osc` (prints the table; imports nothing heavy)."""
    p = sub.add_parser("osc", help="print the OSC address table", description="Print the OSC address table.")
    p.set_defaults(func=lambda args: print(table_text()) or 0)
