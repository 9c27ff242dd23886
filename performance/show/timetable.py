"""Wall-clock triggers: a setlist's `[[at]]` timetable, built on the `schedule` library's job model.

    [[at]]
    time = "17:45"                       # every day at 17:45 (sugar for every = "day", at = "17:45")
    do = "scene closing"
    on = ["tue", "wed", "thu", "fri"]    # optional: only these weekdays
    [[at]]
    every = "hour"                       # "day" | "hour" | "minute"
    at = ":00"                           # day: "HH:MM[:SS]"; hour: ":MM" or "MM:SS"; minute: ":SS"
    do = "scene chime"
    open_only = true                     # optional: skip while the installation is closed
    until = "2027-01-31"                 # optional: no firing after this (schedule's Job.until)

`do` is any command of the OSC table, written as its name and argument ("go", "scene 3",
"scene closing", "volume 0.4", "voice 0", "temperature 1.2"), or "restart" (a planned restart
under --install). Each job is a `schedule.Job` (`every().day.at(...)`, `every().hour.at(":00")`,
`every().saturday.at(...)`, `.until(...)`) in a private `schedule.Scheduler`.

The engine's notion of wall time. `schedule` reads `datetime.datetime.now()` itself. This module
gives it a `datetime` whose `now()` returns the wall time handed to `Timetable.tick(wall)` while a
tick (or the building of the jobs) runs, through a context variable, and the real time otherwise;
so `--time-scale` and a FakeClock move the timetable with the rest of the show, and nothing else
in the process sees a different clock. The time handed over is the local wall-clock reading in the
installation's zone (naive, as `schedule` keeps it), so a day's times follow the zone's DST rules
as opening hours do: a time inside the spring gap fires at the jump, a time in the repeated autumn
hour fires once, the first time; an hourly job fires once per distinct local hour.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, tzinfo

import schedule

from performance.protocol.commands import PREFIX, TABLE, Command, CommandError, interpret
from performance.show.schema import ConfigError, Table

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EVERY = ("day", "hour", "minute")
AT_FORMS = {"day": ('"HH:MM" or "HH:MM:SS" from 00:00 to 23:59:59', re.compile(r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$")),
            "hour": ('":MM" or "MM:SS" (minutes and seconds 00-59)', re.compile(r"^([0-5]\d)?:[0-5]\d$")),
            "minute": ('":SS" (seconds 00-59)', re.compile(r"^:[0-5]\d$"))}

_WALL: contextvars.ContextVar[tuple[datetime, datetime] | None] = contextvars.ContextVar("lectern_wall", default=None)


class _EngineDatetime(_dt.datetime):
    """`datetime` for the `schedule` module: now() is the engine's wall time during a tick."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        wall = _WALL.get()
        if wall is None:
            return _dt.datetime.now(tz)
        local_naive, aware = wall
        return local_naive if tz is None else aware.astimezone(tz)


def _install_engine_time() -> None:
    """Point the `schedule` module's `datetime` at one whose now() honours _WALL (once)."""
    if getattr(schedule.datetime, "_lectern", False):
        return
    shim = types.ModuleType("datetime")
    shim.__dict__.update({k: v for k, v in vars(_dt).items() if not k.startswith("__")})
    shim.datetime = _EngineDatetime
    shim._lectern = True
    schedule.datetime = shim


_install_engine_time()


@contextlib.contextmanager
def _engine_time(wall: datetime, zone: tzinfo) -> Iterator[None]:
    aware = wall if wall.tzinfo is not None else wall.replace(tzinfo=zone)
    token = _WALL.set((aware.astimezone(zone).replace(tzinfo=None), aware))
    try:
        yield
    finally:
        _WALL.reset(token)


@dataclass(frozen=True)
class AtEntry:
    """One validated `[[at]]` table."""

    n: int  # 1-based position in the setlist, for messages
    every: str  # "day" | "hour" | "minute"
    at: str  # in schedule's format for that unit
    do: str  # as written
    address: str  # "/lectern/..." or "restart"
    args: tuple
    on: tuple[int, ...] = ()  # weekdays 0=Mon; () = every day
    until: str | None = None  # "YYYY-MM-DD HH:MM:SS", local
    open_only: bool = False


@dataclass(frozen=True)
class Firing:
    """A job that came due: what to do, and when it was due (local naive wall time)."""

    entry: AtEntry
    due: datetime

    def command(self) -> Command:
        """The Command the engine applies (source "schedule")."""
        return Command(self.entry.address, self.entry.args, source="schedule")


def parse_do(t: Table, key: str, text: object, scene_names: list[str], scene_count: int) -> tuple[str, tuple]:
    """`do = "volume 0.4"` -> ("/lectern/volume", (0.4,)), validated as the OSC server would."""
    allowed = "a command of `python run.py osc` with its argument (e.g. \"scene 2\", \"volume 0.5\") or \"restart\""
    if not isinstance(text, str) or not text.strip():
        raise t.error(key, text, allowed)
    name, _, rest = text.strip().partition(" ")
    name = name.removeprefix(PREFIX + "/").removeprefix("/")
    rest = rest.strip()
    spec = TABLE.get(name)
    if spec is None or not spec.network and name != "restart":  # the schedule may restart, never quit
        raise t.error(key, text, allowed)
    args: tuple = ()
    if rest:
        if spec.args == "":
            raise t.error(key, text, f"{name} takes no argument")
        if spec.args in ("s", "i|s") and not re.fullmatch(r"-?\d+", rest):
            args = (rest,)
        else:
            try:
                args = (float(rest),) if spec.args == "f" else (int(rest),)
            except ValueError:
                raise t.error(key, text, f"{name} needs {spec.range}") from None
    if name == "scene" and args:  # checked as written: the validator would clamp a number into range
        a = args[0]
        if isinstance(a, int) and not 1 <= a <= scene_count or isinstance(a, str) and a not in scene_names:
            raise t.error(key, text, f"no such scene; scenes: 1..{scene_count} or {', '.join(scene_names)}")
    try:
        name, args = interpret(name, args, scene_count, network=False)
    except CommandError as e:
        raise t.error(key, text, str(e)) from None
    if name == "restart":
        return name, ()  # the runtime's own: the transcript has always named it without the prefix
    return f"{PREFIX}/{name}", args


def _until(t: Table, v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, _dt.date) and not isinstance(v, _dt.datetime):
        v = v.isoformat()
    if isinstance(v, str):
        for fmt, end in (("%Y-%m-%d", " 23:59:59"), ("%Y-%m-%d %H:%M", ":00"), ("%Y-%m-%d %H:%M:%S", "")):
            try:
                _dt.datetime.strptime(v.strip(), fmt)
                return v.strip() + end
            except ValueError:
                continue
    raise t.error("until", v, 'a local date "YYYY-MM-DD" or "YYYY-MM-DD HH:MM" (no firing after it)')


def parse_timetable(raw: object, file: str, scene_names: list[str], scene_count: int) -> tuple[AtEntry, ...]:
    """Validate a setlist's `[[at]]` array; any bad value raises one-line ConfigError.

    scene_names: the names (and file stems) a `do = "scene NAME"` may use; scene_count: N."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{file}: key 'at' must be an array of tables ([[at]])")
    out = []
    for n, item in enumerate(raw, start=1):
        t = Table(item, file, f"at[{n}]")
        when, every, at = t.raw("time"), t.raw("every"), t.raw("at")
        if when is not None:
            if every not in (None, "day") or at is not None:
                raise t.error("time", when, 'time = "HH:MM" is a daily time; use every + at for other periods')
            every, at, at_key = "day", when, "time"
        else:
            at_key = "at"
        if every is None:
            raise ConfigError(f"{file}: [[at]] #{n} needs time = \"HH:MM\" or every = \"day\"|\"hour\"|\"minute\" with at")
        if every not in EVERY:
            raise t.error("every", every, f"allowed: {', '.join(EVERY)}")
        if at is None:
            at = {"day": None, "hour": ":00", "minute": ":00"}[every]
            if at is None:
                raise ConfigError(f"{file}: [[at]] #{n} every = \"day\" needs at = \"HH:MM\"")
        form, rx = AT_FORMS[every]
        if not isinstance(at, str) or not rx.match(at.strip()):
            raise t.error(at_key, at, f"for every = \"{every}\": {form}")
        address, args = parse_do(t, "do", t.raw("do"), scene_names, scene_count)
        on = t.raw("on", [])
        if isinstance(on, str):
            on = [on]
        if not isinstance(on, list) or any(d not in DAYS for d in on):
            raise t.error("on", on, f"a list of weekdays from {', '.join(DAYS)}")
        entry = AtEntry(n=n, every=every, at=at.strip(), do=t.raw("do").strip(), address=address, args=args,
                        on=tuple(sorted({DAYS.index(d) for d in on})), until=_until(t, t.raw("until")),
                        open_only=bool(t.bool("open_only", False)))
        t.check_unknown()
        out.append(entry)
    return tuple(out)


class Timetable:
    """The runtime's scheduler: `tick(wall)` once a frame returns the firings that came due.

    Owned by the frame loop (no thread of its own); jobs are built on the first tick so that they
    count from the engine's wall time, not the machine's."""

    def __init__(self, entries: tuple[AtEntry, ...], zone: tzinfo) -> None:
        self.entries = entries
        self.zone = zone
        self.scheduler: schedule.Scheduler | None = None
        self._fired: list[Firing] = []

    def _build(self) -> schedule.Scheduler:
        s = schedule.Scheduler()
        for e in self.entries:
            if e.every == "day" and e.on and len(e.on) < 7:
                jobs = [getattr(s.every(), _DAY_NAMES[d]).at(e.at) for d in e.on]  # weekly jobs
            else:
                jobs = [getattr(s.every(), e.every).at(e.at)]
            for job in jobs:
                if e.until:
                    try:
                        job.until(e.until)
                    except schedule.ScheduleValueError:  # already past; .do() never ran, so no job
                        continue
                job.do(self._fire, e, job)
        return s

    def _fire(self, entry: AtEntry, job: schedule.Job) -> None:
        due = job.next_run
        if entry.on and entry.every != "day" and due.weekday() not in entry.on:
            return  # an hourly/minutely job limited to some weekdays
        self._fired.append(Firing(entry, due))

    def start(self, wall: datetime) -> None:
        """Build the jobs counting from engine wall time `wall` (the session's start): a time that
        falls due while the show is still starting up fires at the first tick, late but not lost."""
        with _engine_time(wall, self.zone):
            self.scheduler = self._build()

    def tick(self, wall: datetime) -> list[Firing]:
        """Run what is due at engine wall time `wall` (tz-aware); each due job fires once, even
        after a stall (schedule does not replay missed runs)."""
        with _engine_time(wall, self.zone):
            if self.scheduler is None:
                self.scheduler = self._build()
            self.scheduler.run_pending()
        fired, self._fired = self._fired, []
        return fired

    def upcoming(self, wall: datetime, n: int = 3) -> list[tuple[datetime, AtEntry]]:
        """The next n firings after `wall` (local naive wall times), soonest first."""
        if self.scheduler is None:
            with _engine_time(wall, self.zone):
                self.scheduler = self._build()
        jobs = sorted((j for j in self.scheduler.jobs if j.next_run is not None), key=lambda j: j.next_run)
        out = []
        for j in jobs:
            entry = j.job_func.args[0]
            out.append((j.next_run, entry))
        return out[:n]
