"""The one table of commands, and the one `validate()` that every input calls.

Keyboard, OSC, MIDI, the browser remote and the schedule all turn raw input into a `Command`
through `validate(name, args, ...)`: the argument shape, the bounds and the refusal texts live
here once. Each `CommandSpec` says which owner handles the command (the engine, the runtime, a
controller, or an OSC session verb that never leaves the OSC server); `run.py osc`, MIDI's list of
mappable commands, the remote's controls and the README's table are generated from `TABLE`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PREFIX = "/lectern"
MAX_TEMPERATURE = 3.0  # the contract's temperature scale (kinds with a 0..1 scale map it)
MAX_PROMPT_CHARS = 2000  # the model reads a prompt before its first token: a long one stalls the worker
MAX_NAME_CHARS = 200  # scene and model names
MAX_SEED = 2**31 - 1
MAX_WHOLE = 2**31 - 1  # whole-number arguments (units, ports) are clamped or refused beyond this
_ids = itertools.count(1)

OWNERS = ("engine", "runtime", "controller", "session")
TYPE_NAMES = {"": "—", "f": "float", "i": "int", "s": "string", "i|s": "int or string", "b": "0|1"}


class CommandError(ValueError):
    """A command that cannot be accepted; the text is the reply's detail (one line)."""


class UnknownCommand(CommandError):
    """An address or name that is not in the table."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """What one command is: its argument shape and bounds, who handles it, and its help text.

    args: "" none | "f" a number | "i" a whole number | "s" text | "i|s" a scene number or name |
    "b" a 0|1 switch (any number, >= 0.5 is on). owner: "engine" (Engine.step), "runtime" (the
    router: quit, fullscreen, restart, reload), "controller" (learn: MIDI), "session" (OSC's own verbs).
    """

    name: str  # without the /lectern prefix
    args: str
    range: str
    does: str
    owner: str = "engine"
    fader: bool = False  # bursts coalesce: only the newest value waits for its owner
    bounds: tuple[float, float] | None = None  # numbers are clamped into this range
    max_chars: int = 0  # text arguments longer than this are refused (0: not text)
    tcp: bool = False  # also accepted over OSC TCP (SLIP framing)
    optional: bool = False  # the argument may be left out (caption: toggle)
    network: bool = True  # reachable from OSC/MIDI/remote (False: keyboard or schedule only)

    def clamp(self, value: float) -> float:
        """The value inside this command's bounds (the only copy of the bounds)."""
        lo, hi = self.bounds if self.bounds is not None else (-math.inf, math.inf)
        return min(hi, max(lo, float(value)))


_COMMANDS = [
    CommandSpec("go", "", "", "start the scene standing by (after panic: resume with it)", tcp=True),
    CommandSpec("back", "", "", "go to the previous scene (at the next boundary)"),
    CommandSpec("scene", "i|s", "1..N or a scene name", "jump to a scene (at the next boundary)",
                max_chars=MAX_NAME_CHARS),
    CommandSpec("pause", "", "", "freeze the timeline"),
    CommandSpec("resume", "", "", "continue after pause or blackout"),
    CommandSpec("panic", "", "", "fade picture and sound to black; GO resumes", tcp=True),
    CommandSpec("blackout", "", "", "black and silent at once; resume brings it back"),
    CommandSpec("temperature", "f", "0..3 (clamped)", "override the scene's temperature", fader=True,
                bounds=(0.0, MAX_TEMPERATURE)),
    CommandSpec("temperature/release", "", "", "back to the scene's temperature program"),
    CommandSpec("seed", "i", f"0..{MAX_SEED}", "start a new poem now with this seed", bounds=(0, MAX_SEED)),
    CommandSpec("reseed", "", "", "start a new poem now with a fresh random seed"),
    CommandSpec("model", "s", "a model name under models/ or in the setlist", "write with this model from the next poem"
                " (an empty string releases it)", max_chars=MAX_NAME_CHARS),
    CommandSpec("model/release", "", "", "the scenes' own models again"),
    CommandSpec("prompt", "s", f"text, at most {MAX_PROMPT_CHARS} characters", "start the next poem from this text"
                " (an empty string releases it)", max_chars=MAX_PROMPT_CHARS),
    CommandSpec("prompt/release", "", "", "the scenes' own prompts again"),
    CommandSpec("speed", "f", "0.1..10 (clamped)", "reveal speed multiplier", fader=True, bounds=(0.1, 10.0)),
    CommandSpec("voice", "b", "0|1", "speech on/off"),
    CommandSpec("volume", "f", "0..1 (clamped)", "master volume", fader=True, bounds=(0.0, 1.0)),
    CommandSpec("sonify", "b", "0|1", "sonification on/off"),
    CommandSpec("keep", "", "", "append the current poem to harvest.txt"),
    CommandSpec("neuron", "i", "0..hidden-1", "x-ray: watch this hidden unit (from the next token)",
                bounds=(0, MAX_WHOLE)),
    CommandSpec("caption", "b", "0|1 (no argument: toggle)", "caption with model, temperature, seed", optional=True),
    CommandSpec("voice/name", "s", "piper:NAME (piper:en_US-joe-medium or a voice's path), espeak:LANG; empty: the "
                "scenes' own", "speak with this voice from the next line", max_chars=MAX_NAME_CHARS),
    CommandSpec("voice/rate", "f", "0.3..3 (clamped; 0 releases)", "Piper's length scale: above 1 reads slower",
                fader=True, bounds=(0.0, 3.0)),
    CommandSpec("voice/variation", "f", "0..1.5 (clamped)", "Piper's variation (0 = flat, 0.667 = the voice's own)",
                fader=True, bounds=(0.0, 1.5)),
    CommandSpec("learn", "s", "an address, e.g. /lectern/temperature; off = cancel",
                "MIDI learn: the next control moved on the MIDI controller is bound to it", owner="controller",
                max_chars=MAX_NAME_CHARS),
    CommandSpec("choose", "i", "1..9 a candidate on stage; 0 = offer the next word now (hold)",
                "co-writing: the next word is candidate N (scenes with cowrite)", bounds=(0, 9)),
    CommandSpec("prefix", "s", "a poet, e.g. Hopkins (an empty string releases it)",
                "pretrained models: write under this prefix from the next line", max_chars=MAX_NAME_CHARS),
    # the runtime's own: the keyboard and the schedule reach them, the network never does
    CommandSpec("quit", "", "", "end the session (Ctrl+Q twice)", owner="runtime", network=False),
    CommandSpec("fullscreen", "", "", "fullscreen on/off (f)", owner="runtime", network=False),
    CommandSpec("restart", "", "", "a planned restart of an installation (the [[at]] timetable, under --install)",
                owner="runtime", network=False),
    # the file watcher's thread reads and checks the files; the engine answers once it has them
    CommandSpec("reload", "", "", "read the setlist and its scene files again; the new version takes effect at the"
                " next poem or cue boundary (a bad file changes nothing: one line says why)", owner="runtime"),
    # words from the audience (a setlist's [audience]): the operator switches the page live; a word
    # itself comes only from the audience page's own path (remote_process.py: "word"), never a controller
    CommandSpec("audience", "b", "0|1", "words from the audience on/off (setlists with [audience])"),
    CommandSpec("audience/word", "s", "one word of letters", "an audience word: it seeds the next poem",
                max_chars=64, network=False),
]
# OSC's session verbs: answered by the OSC server itself, they never reach the show
SESSION = [
    CommandSpec("connect", "s", "the passcode", "authorise this sender (when --osc-passcode is set)", owner="session",
                tcp=True, max_chars=256),
    CommandSpec("ping", "", "", "answered with /lectern/pong", owner="session", tcp=True),
    CommandSpec("subscribe", "i", "a UDP port 1..65535", "receive /lectern/reply and /lectern/state/... on that port "
                "(a remote sender first gets /lectern/token T there and repeats: subscribe PORT T)", owner="session",
                bounds=(1, 65535)),
    CommandSpec("unsubscribe", "", "", "stop receiving state", owner="session"),
]
TABLE: dict[str, CommandSpec] = {c.name: c for c in _COMMANDS}
SESSION_TABLE: dict[str, CommandSpec] = {c.name: c for c in SESSION}


def network_commands() -> list[CommandSpec]:
    """The commands a controller on the network may send (OSC, MIDI, the remote), in table order."""
    return [c for c in _COMMANDS if c.network]


@dataclass(frozen=True, slots=True)
class Command:
    """A validated request to change the show.

    address: full address, e.g. "/lectern/temperature".
    args: validated and clamped arguments.
    source: "key" | "osc" | "schedule" | "midi" | "remote" | "console" | ...
    sender: (ip, port) of a network sender, else None.
    due: engine time at which to apply it (an OSC bundle's timetag), None = at once.
    reply: called by the owner with (ok, detail) once applied or refused; None = nobody to tell.
    """

    address: str
    args: tuple = ()
    source: str = "key"
    sender: tuple[str, int] | None = None
    due: float | None = None
    reply: Callable[[bool, str], None] | None = field(default=None, compare=False, repr=False)
    received: float | None = field(default=None, compare=False)  # time.monotonic() when it arrived
    id: int = field(default_factory=lambda: next(_ids), compare=False)

    @property
    def name(self) -> str:
        """The address without the prefix: "temperature", "temperature/release", "go"."""
        return self.address[len(PREFIX) + 1:] if self.address.startswith(PREFIX + "/") else self.address

    @property
    def spec(self) -> CommandSpec | None:
        """This command's table entry (None for a name the table does not know)."""
        return TABLE.get(self.name)


def _number(v: Any, what: str) -> float:
    """A finite number from an int or float argument, or CommandError naming the field."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise CommandError(f"{what} must be a number, got {type(v).__name__}")
    if isinstance(v, int) and abs(v) > 2**53:
        raise CommandError(f"{what}: a number of {len(str(abs(v)))} digits is out of range")
    if not math.isfinite(v):
        raise CommandError(f"{what}: {v} is not a usable number")
    return float(v)


def _whole(v: Any, what: str) -> int:
    x = _number(v, what)
    if x != int(x):
        raise CommandError(f"{what} needs a whole number, got {v}")
    return int(x)


def split_address(address: str) -> str:
    """The table name of an address ("/lectern/go" -> "go"), or UnknownCommand."""
    if not isinstance(address, str) or not address.startswith(PREFIX + "/"):
        raise UnknownCommand(f"unknown address {str(address)[:80]} (all addresses start with {PREFIX}/)")
    return address[len(PREFIX) + 1:]


def clean_args(spec: CommandSpec, args: tuple | list, scene_count: int) -> tuple[str, tuple]:
    """Check and clamp the arguments of one command: (name, clean args), or CommandError.

    Ints are accepted where numbers are expected and whole floats where whole numbers are (TouchOSC
    sends floats for everything); a fractional value where a whole one is meant is refused alike
    for seeds, scenes, units and ports; 0|1 switches read any number (>= 0.5 is on) or a bool."""
    address, kind = f"{PREFIX}/{spec.name}", spec.args
    if kind == "":
        return spec.name, ()
    if not args:
        if spec.optional:
            return spec.name, ()
        raise CommandError(f"{address} needs an argument ({spec.range})")
    v = args[0]
    if kind == "f":
        return spec.name, (spec.clamp(_number(v, address)),)
    if kind == "i":
        x = _whole(v, address)
        if spec.name in ("seed", "subscribe") and spec.bounds and not spec.bounds[0] <= x <= spec.bounds[1]:
            raise CommandError(f"{address} needs {spec.range}, got {x}")
        return spec.name, (int(spec.clamp(x)),)
    if kind == "b":
        if isinstance(v, bool):
            return spec.name, (int(v),)
        return spec.name, (1 if _number(v, address) >= 0.5 else 0,)
    if kind == "s":
        if isinstance(v, str) and not v.strip() and f"{spec.name}/release" in TABLE:
            return f"{spec.name}/release", ()  # an empty prompt or model lets go of the override
        if not isinstance(v, str) or not v.strip():
            raise CommandError(f"{address} needs a non-empty string")
        if spec.max_chars and len(v) > spec.max_chars:
            raise CommandError(f"{address}: {len(v)} characters; at most {spec.max_chars}")
        return spec.name, (v,)
    # i|s: a scene number (clamped into the setlist) or a name
    if isinstance(v, str):
        if not v.strip():
            raise CommandError(f"{address} needs a scene number 1..{max(1, scene_count)} or a scene name")
        if len(v) > spec.max_chars:
            raise CommandError(f"{address}: a scene name of {len(v)} characters; at most {spec.max_chars}")
        return spec.name, (v,)
    x = _whole(v, address)
    return spec.name, (min(max(1, scene_count), max(1, x)),)


def interpret(name_or_address: str, args: tuple | list, scene_count: int, *, network: bool = True,
              table: dict[str, CommandSpec] = TABLE) -> tuple[str, tuple]:
    """(table name, clean args) for a command given by name or address, or CommandError.

    network: the sender is a controller on the network (runtime-only commands are unknown to it)."""
    name = split_address(name_or_address) if name_or_address.startswith("/") else name_or_address
    spec = table.get(name)
    if spec is None or (network and not spec.network):
        raise UnknownCommand(f"unknown address {PREFIX}/{name[:80]}; see `python run.py osc`")
    return clean_args(spec, tuple(args), scene_count)


def validate(name_or_address: str, args: tuple | list = (), *, scene_count: int, source: str,
             network: bool = True, **fields: Any) -> Command:
    """The one way into the show: a checked, clamped `Command`, or CommandError with one line.

    name_or_address: "temperature" or "/lectern/temperature". network: False for the keyboard and
    the schedule, which may also reach the runtime's own commands. fields: sender, due, reply,
    received."""
    name, clean = interpret(name_or_address, args, scene_count, network=network)
    return Command(f"{PREFIX}/{name}", clean, source=source, **fields)
