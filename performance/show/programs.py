"""Temperature and seed programs: pure functions of (scene time, poem index, token index).

Nothing here keeps state or reads a clock, so tests assert exact values and a performance with
the same setlist seed repeats exactly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from performance.protocol.commands import MAX_TEMPERATURE  # the one temperature scale
from performance.show.schema import ConfigError, Table

TEMPERATURE_PROGRAMS = ("constant", "ramp", "sine", "random", "sawtooth", "list")
SEED_PROGRAMS = ("fixed", "new", "list")


def _unit_random(*key: int | str) -> float:
    """A deterministic uniform [0, 1) number for a key: 'random per poem' without shared state."""
    return random.Random("/".join(map(str, key))).random()


@dataclass(frozen=True, slots=True)
class TemperatureProgram:
    """How temperature moves through a scene.

    constant: value. ramp: start→end over `seconds` or `poems` (curve linear|exponential), then holds.
    sine: center ± depth with period `seconds`. random: uniform in [lo, hi], one draw per poem.
    sawtooth: lo, lo+step, ... each poem, wrapping past hi back to lo. list: values cycled per token.
    """

    program: str = "constant"
    value: float = 0.8
    start: float = 0.2
    end: float = 1.5
    seconds: float | None = None
    poems: int | None = None
    curve: str = "linear"
    center: float = 0.8
    depth: float = 0.3
    period: float = 60.0
    lo: float = 0.25
    hi: float = 1.25
    step: float = 0.1
    values: tuple[float, ...] = ()
    top_k: int = 0
    top_p: float = 1.0

    def at(self, scene_t: float, poem: int, token: int, salt: int | str = 0) -> float:
        """Temperature for `token` (0-based) of the scene's `poem` (0-based) at scene time scene_t."""
        p = self.program
        if p == "constant":
            v = self.value
        elif p == "ramp":
            if self.poems:
                frac = min(1.0, poem / max(1, self.poems - 1))
            else:
                frac = min(1.0, max(0.0, scene_t / (self.seconds or 1.0)))
            if self.curve == "exponential" and self.start > 0 and self.end > 0:
                v = self.start * (self.end / self.start) ** frac
            else:
                v = self.start + (self.end - self.start) * frac
        elif p == "sine":
            v = self.center + self.depth * math.sin(2 * math.pi * scene_t / self.period)
        elif p == "random":
            v = self.lo + (self.hi - self.lo) * _unit_random("temperature", salt, poem)
        elif p == "sawtooth":
            steps = max(1, int(round((self.hi - self.lo) / self.step)) + 1) if self.step > 0 else 1
            v = self.lo + self.step * (poem % steps)
        else:  # list
            v = self.values[token % len(self.values)]
        return round(min(MAX_TEMPERATURE, max(0.0, v)), 6)

    @classmethod
    def from_table(cls, t: Table) -> TemperatureProgram:
        program = t.str("program", "constant", TEMPERATURE_PROGRAMS)
        kw: dict = {"program": program}
        temp = dict(lo=0.0, hi=MAX_TEMPERATURE)
        if program == "constant":
            kw["value"] = t.float("value", 0.8, **temp)
        elif program == "ramp":
            kw["start"] = t.float("from", 0.2, **temp)
            kw["end"] = t.float("to", 1.5, **temp)
            kw["seconds"] = t.float("seconds", None, lo=0.001)
            kw["poems"] = t.int("poems", None, lo=1)
            if kw["seconds"] is None and kw["poems"] is None:
                raise ConfigError(f"{t.file}: table '[{t.prefix}]' ramp needs 'seconds' or 'poems'")
            kw["curve"] = t.str("curve", "linear", ("linear", "exponential"))
        elif program == "sine":
            kw["center"] = t.float("center", 0.8, **temp)
            kw["depth"] = t.float("depth", 0.3, lo=0.0, hi=MAX_TEMPERATURE)
            kw["period"] = t.float("period", 60.0, lo=0.01)
        elif program in ("random", "sawtooth"):
            kw["lo"] = t.float("lo", 0.25, **temp)
            kw["hi"] = t.float("hi", 1.25, **temp)
            if kw["hi"] < kw["lo"]:
                raise t.error("hi", kw["hi"], f"must be >= lo ({kw['lo']})")
            if program == "sawtooth":
                kw["step"] = t.float("step", 0.1, lo=0.001, hi=MAX_TEMPERATURE)
        else:
            values = t.list("values", None, (int, float))
            if not values:
                raise t.error("values", values, "a non-empty list of temperatures 0..3")
            if any(not 0 <= v <= MAX_TEMPERATURE for v in values):
                raise t.error("values", values, "every temperature must be from 0 to 3")
            kw["values"] = tuple(float(v) for v in values)
        kw["top_k"] = t.int("top_k", 0, lo=0)
        kw["top_p"] = t.float("top_p", 1.0, lo=0.0, hi=1.0)
        t.check_unknown()
        return cls(**kw)

    def describe(self) -> str:
        p = self.program
        if p == "constant":
            return f"{self.value:g}"
        if p == "ramp":
            over = f"{self.poems} poems" if self.poems else f"{self.seconds:g} s"
            return f"{self.start:g}→{self.end:g} over {over}"
        if p == "sine":
            return f"{self.center:g}±{self.depth:g}/{self.period:g}s"
        if p in ("random", "sawtooth"):
            return f"{p} {self.lo:g}–{self.hi:g}"
        return f"list of {len(self.values)}"


def session_seed_draw(session_seed: int, draw: int) -> int:
    """The draw-th fresh seed of a session: a bijection of `draw` on [0, 2**31) keyed by the session
    seed. Random draws would collide (a gallery showing a million poems would repeat about 230
    seeds by the birthday bound); a permutation never repeats within 2**31 poems, and `--seed S`
    still reproduces the whole sequence."""
    mask = (1 << 31) - 1
    key = random.Random(f"session/{session_seed}").randrange(1 << 31)
    x = (draw + key) & mask
    for mult in (0x2C1B3C6D, 0x297A2D39, 0x6D2B79F5):  # odd multipliers: invertible modulo 2**31
        x ^= x >> 16
        x = (x * mult) & mask
        x ^= key
    x ^= x >> 15
    return x


@dataclass(frozen=True, slots=True)
class SeedProgram:
    """Which seed each poem gets. fixed: `value` every poem. new: a fresh seed every poem (the
    "poem flick"), drawn deterministically from the session seed. list: values in turn.
    continue_stream: poems after the first continue the same stream instead of restarting it."""

    program: str = "new"
    value: int = 7
    values: tuple[int, ...] = ()
    continue_stream: bool = False

    def at(self, poem: int, session_seed: int, salt: int | str = 0, draw: int | None = None) -> int:
        """The seed of a poem. For "new", `draw` is the session's running count of poems opened
        (loops, jumps and back included), so no two poems of a session share a seed."""
        if self.program == "new" and draw is not None:
            return session_seed_draw(session_seed, draw)
        if self.program == "fixed":
            return self.value
        if self.program == "list":
            return self.values[poem % len(self.values)]
        return random.Random(f"seed/{session_seed}/{salt}/{poem}").randrange(2**31)

    @classmethod
    def from_table(cls, t: Table) -> SeedProgram:
        program = t.str("program", "new", SEED_PROGRAMS)
        kw: dict = {"program": program, "continue_stream": t.bool("continue", False)}
        if program == "fixed":
            kw["value"] = t.int("value", 7, lo=0, hi=2**31 - 1)
        elif program == "list":
            values = t.list("values", None, int)
            if not values:
                raise t.error("values", values, "a non-empty list of whole-number seeds")
            kw["values"] = tuple(values)
        t.check_unknown()
        return cls(**kw)


def next_pause_text(poems_done: int, pause_every: int, pause_seconds: float, poems: int | None) -> str:
    """When the scene's next timed pause comes: after which poem (of the scene), and how long."""
    if not pause_every or pause_seconds <= 0:
        return ""
    after = (poems_done // pause_every + 1) * pause_every
    if poems is not None and after >= poems:
        return ""
    left = after - poems_done
    return f"pause after poem {after} (in {left}), {pause_seconds:g} s"
