"""MIDI mapping files: which note or CC means which /lectern command, and the pure rules around them.

A mapping file (TOML; shipped ones in assets/controllers/*.toml) is a name and a list of bindings:

    name = "Korg nanoKONTROL2"
    channel = 1                      # default MIDI channel 1..16 for the bindings (omit: any)
    [[bind]]
    cc = 0                           # or note = 36
    command = "temperature"          # a /lectern command without the prefix, or "learn"
    range = [0.0, 2.0]               # continuous commands: the value at 0 and at 127
    curve = "exp"                    # linear | exp (finer at the low end) | log (finer at the top)
    takeover = "pickup"              # pickup (soft takeover) | jump
    [[bind]]
    cc = 41
    command = "go"                   # buttons fire on press (note on, or CC >= 64)
    [[bind]]
    cc = 58
    command = "scene"
    value = 2                        # scene jumps name their scene (number or name)

Buttons for pause, voice, sonify and caption toggle against the current state; their LEDs (and
motor faders or LED rings for continuous commands) follow the state from any source unless
`feedback = false`. Everything here is pure: the MIDI thread owns the objects and the ports.
"""

from __future__ import annotations

import tomllib
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from performance.protocol.commands import network_commands
from performance.show.schema import ConfigError, Table

# continuous commands: (lowest, highest) the command accepts, whether the value is a whole number.
# The faders' bounds are the command table's; seed and neuron get a range a 7-bit control can cover.
CONTINUOUS: dict[str, tuple[float, float, bool]] = {
    **{c.name: (*c.bounds, False) for c in network_commands() if c.fader and c.bounds is not None},
    "neuron": (0.0, 4095.0, True),
    "seed": (0.0, 127.0, True),
}
# buttons: fire once per press (every command without an argument, a switch, a scene, and learn)
BUTTONS = tuple(c.name for c in network_commands() if c.args in ("", "b", "i|s") or c.name in ("learn", "choose"))
TOGGLES = {"pause": "paused", "voice": "voice", "sonify": "sonify", "caption": "caption"}  # command -> state key
STATE_KEY = {"temperature": "temperature", "volume": "volume", **TOGGLES}  # what feedback follows
CURVES = ("linear", "exp", "log")
TAKEOVERS = ("pickup", "jump")
PICKUP_TOLERANCE = 2  # raw steps: a control this close to the show's value takes it over
LEARNED_FILE = "midi-learned.toml"


@dataclass(frozen=True)
class Binding:
    """One control (a CC or a note on a channel) bound to one command."""

    kind: str  # "cc" | "note"
    number: int  # 0..127
    command: str  # without the /lectern prefix
    channel: int | None = None  # 1..16, None = any
    range: tuple[float, float] | None = None  # continuous commands only
    curve: str = "linear"
    takeover: str = "pickup"
    value: int | str | None = None  # scene jumps: the scene
    feedback: bool = True

    @property
    def continuous(self) -> bool:
        """A fader or knob (its value matters), not a button."""
        return self.command in CONTINUOUS

    def matches(self, kind: str, channel: int, number: int) -> bool:
        """Is this the control that sent (kind, channel 1..16, number)?"""
        return self.kind == kind and self.number == number and (self.channel is None or self.channel == channel)

    def to_value(self, raw: int) -> float | int:
        """A 0..127 control value as the command's value, through the range and curve."""
        x = min(127, max(0, raw)) / 127
        y = x * x if self.curve == "exp" else x ** 0.5 if self.curve == "log" else x
        lo, hi = self._range()
        v = lo + (hi - lo) * y
        return int(round(v)) if CONTINUOUS[self.command][2] else round(v, 4)

    def to_raw(self, value: float) -> int:
        """The inverse: the 0..127 position that shows `value` (motor faders, LED rings, pickup)."""
        lo, hi = self._range()
        y = 0.0 if hi == lo else min(1.0, max(0.0, (float(value) - lo) / (hi - lo)))
        x = y ** 0.5 if self.curve == "exp" else y * y if self.curve == "log" else y
        return int(round(x * 127))

    def _range(self) -> tuple[float, float]:
        return self.range if self.range is not None else CONTINUOUS[self.command][:2]

    def describe(self) -> str:
        """e.g. "cc 7 ch 1 → temperature 0..2 exp"."""
        ch = f" ch {self.channel}" if self.channel else ""
        extra = f" {self._range()[0]:g}..{self._range()[1]:g} {self.curve}" if self.continuous else ""
        val = f" {self.value}" if self.value is not None else ""
        return f"{self.kind} {self.number}{ch} → {self.command}{val}{extra}"

    def to_toml(self) -> dict:
        """This binding as a [[bind]] table (for the learned-bindings file)."""
        out: dict[str, Any] = {self.kind: self.number, "command": self.command}
        if self.channel is not None:
            out["channel"] = self.channel
        if self.range is not None:
            out["range"] = list(self.range)
        if self.continuous:
            out["curve"], out["takeover"] = self.curve, self.takeover
        if self.value is not None:
            out["value"] = self.value
        if not self.feedback:
            out["feedback"] = False
        return out


@dataclass(frozen=True)
class Mapping:
    """A named list of bindings; the first binding that matches a control wins."""

    name: str
    bindings: tuple[Binding, ...] = ()
    file: str = ""

    def find(self, kind: str, channel: int, number: int) -> Binding | None:
        """The binding for this control, or None."""
        for b in self.bindings:
            if b.matches(kind, channel, number):
                return b
        return None

    def with_binding(self, b: Binding) -> Mapping:
        """A copy where `b` replaces whatever bound the same control before (learn)."""
        rest = tuple(x for x in self.bindings
                     if not (x.kind == b.kind and x.number == b.number and (x.channel == b.channel or x.channel is None
                                                                             or b.channel is None)))
        return replace(self, bindings=(b, *rest))


def binding_from_table(t: Table, default_channel: int | None) -> Binding:
    """One [[bind]] table as a Binding; raises ConfigError naming the file and key."""
    kinds = [k for k in ("cc", "note") if t.has(k)]
    if len(kinds) != 1:
        raise ConfigError(f"{t.file}: '{t.prefix}' needs exactly one of cc = 0..127 or note = 0..127")
    kind = kinds[0]
    number = t.int(kind, lo=0, hi=127)
    command = t.str("command", None, list(CONTINUOUS) + [b for b in BUTTONS if b not in CONTINUOUS])
    if command is None:
        raise ConfigError(f"{t.file}: '{t.prefix}' needs command = one of {', '.join(BUTTONS + tuple(CONTINUOUS))}")
    channel = t.int("channel", default_channel, lo=1, hi=16)
    rng = None
    if command in CONTINUOUS:
        r = t.list("range", None, (int, float))
        lo, hi, _ = CONTINUOUS[command]
        if r is not None:
            if len(r) != 2 or not all(lo <= float(x) <= hi for x in r):
                raise t.error("range", r, f"must be [low, high] within {lo:g}..{hi:g} for {command}")
            rng = (float(r[0]), float(r[1]))
        curve = t.str("curve", "linear", CURVES)
        takeover = t.str("takeover", "pickup", TAKEOVERS)
    else:
        for k in ("range", "curve", "takeover"):
            if t.has(k):
                raise t.error(k, t.raw(k), f"only for continuous commands ({', '.join(CONTINUOUS)})")
        curve, takeover = "linear", "pickup"
    value = t.raw("value")
    if command == "scene":
        if isinstance(value, bool) or not isinstance(value, int | str) or (isinstance(value, int) and value < 1):
            raise t.error("value", value, "a scene jump needs value = a scene number (1..N) or a scene name")
    elif command == "choose":  # co-writing pads: value = the candidate they pick (0: offer the next word)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 9:
            raise t.error("value", value, "a choose pad needs value = the candidate it picks, 1..9 (0 = offer now)")
    elif value is not None:
        raise t.error("value", value, "only scene jumps and choose pads take a value")
    feedback = t.bool("feedback", True)
    t.check_unknown()
    return Binding(kind, number, command, channel, rng, curve, takeover, value, feedback)


def mapping_from_dict(data: dict, file: str) -> Mapping:
    """A parsed mapping file as a Mapping; raises ConfigError naming the file and key."""
    t = Table(data, file)
    name = t.str("name", Path(file).stem)
    channel = t.int("channel", None, lo=1, hi=16)
    t.raw("description")
    t.raw("port")
    binds = t.raw("bind", [])
    if not isinstance(binds, list):
        raise t.error("bind", binds, "must be a list of [[bind]] tables")
    out = [binding_from_table(Table(b, file, f"bind[{i}]"), channel) for i, b in enumerate(binds)]
    t.check_unknown()
    return Mapping(name or "", tuple(out), file)


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: mapping file not found (shipped ones: assets/controllers/*.toml)") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    return mapping_from_dict(data, str(path))


def learned_binding(command: str, kind: str, channel: int, number: int) -> Binding:
    """The binding MIDI learn makes: this control, this channel, the command's defaults."""
    value = None
    if command.startswith("scene "):
        command, value = "scene", command[6:].strip()
        value = int(value) if value.isdigit() else value
    return Binding(kind, number, command, channel, value=value)


def save_learned(path: Path, bindings: list[Binding]) -> None:
    """Write learned bindings as a mapping file (loaded over the mapping next time)."""
    # lazy: `run.py --help` imports this module; what the command needs loads when it runs
    import tomli_w

    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"name": "learned", "description": "bindings made with MIDI learn; loaded over the mapping file",
            "bind": [b.to_toml() for b in bindings]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(data))
    tmp.replace(path)


def parse(data: bytes | list[int]) -> tuple[str, int, int, int] | None:
    """A raw MIDI message as (kind "cc"|"note", channel 1..16, number, value), note off as value 0;
    None for anything else (clock, sysex, pitch bend) or broken bytes. By hand rather than through
    mido: this runs for every fader step, and only three channel messages matter here."""
    if len(data) != 3 or data[1] > 127 or data[2] > 127:
        return None
    status, a, b = data[0], data[1], data[2]
    kind, ch = status & 0xF0, (status & 0x0F) + 1
    if kind == 0xB0:
        return "cc", ch, a, b
    if kind == 0x90:
        return "note", ch, a, b
    if kind == 0x80:
        return "note", ch, a, 0
    return None


def message(kind: str, channel: int, number: int, value: int) -> list[int]:
    """Raw bytes of a CC or note on (feedback out), built by mido."""
    # lazy: the device library loads only when the device is opened; a machine without it plays on without this part
    import mido

    ch, v = max(1, min(16, channel)) - 1, max(0, min(127, int(value)))
    if kind == "cc":
        return mido.Message("control_change", channel=ch, control=number & 0x7F, value=v).bytes()
    return mido.Message("note_on", channel=ch, note=number & 0x7F, velocity=v).bytes()


@dataclass
class Pickup:
    """Soft takeover for one continuous control (owned by the MIDI thread).

    After the show's value changes from elsewhere (OSC, the remote, a scene's program), the
    physical control is ignored until it reaches that value (within PICKUP_TOLERANCE) or crosses
    it, so touching a fader never makes the temperature jump. Our own values coming back in the
    state (late, while the fader is still moving) do not detach it."""

    engaged: bool = True
    last_raw: int | None = None
    target: int | None = None
    sent: deque = field(default_factory=lambda: deque(maxlen=64))

    def follow(self, raw_target: int) -> None:
        """The show's value, as a control position, from the published state."""
        self.target = raw_target
        if any(abs(raw_target - s) <= PICKUP_TOLERANCE for s in self.sent):
            return
        if self.last_raw is None or abs(raw_target - self.last_raw) > PICKUP_TOLERANCE:
            self.engaged = False

    def accept(self, raw: int) -> bool:
        """Should this control value be sent to the show?"""
        prev, self.last_raw = self.last_raw, raw
        if not self.engaged and self.target is not None:
            near = abs(raw - self.target) <= PICKUP_TOLERANCE
            crossed = prev is not None and (prev - self.target) * (raw - self.target) < 0
            if not (near or crossed):
                return False
            self.engaged = True
        self.sent.append(raw)
        return True
