"""A setlist's [install] table: loop, opening hours per weekday (crossing midnight allowed), closed
dates, time zone, daily restart, safe setlist, unlock chord.

Hours are local wall-clock times in the installation's time zone, read off the ENGINE's notion of
wall time (clock.wall()), so `--time-scale` crosses closing time in a soak.

How a written time becomes an instant (this is what makes daylight-saving days behave): a span
"10:00-18:00" on a date opens at the first instant the local clock reads 10:00 or later that day and
closes at the first instant it reads 18:00 or later. So a time inside the spring gap (02:30 when the
clock jumps 02:00 -> 03:00) opens at the jump, and a time in the repeated autumn hour counts once,
the first time. No day is skipped or doubled. A span that crosses midnight belongs to the date it
starts on: a closed date silences the night after it, not the night before.

All open intervals are computed as UTC instants per local date and cached, so `is_open` and
`next_change` cost microseconds and can run in the frame loop.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from performance.show.schema import Table

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVERY_DAY_KEYS = ("daily", "every_day")
DEFAULT_CHORD = "ctrl+shift+u"
CHORD_MODIFIERS = ("ctrl", "shift", "alt")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
_CACHE_DAYS = 64  # open intervals remembered per local date; weeks of running stay small


Span = tuple[time, time]
Interval = tuple[datetime, datetime]  # [open, close) in UTC


@functools.lru_cache(maxsize=1)
def local_zone() -> tzinfo:
    """The machine's time zone with its DST rules ($TZ, else /etc/localtime), not a fixed offset:
    a fixed offset would put every opening after the next DST change an hour off."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return datetime.now().astimezone().tzinfo or UTC


def first_instant(day: date, at: time, zone: tzinfo) -> datetime:
    """The first instant (UTC) at which the local clock in `zone` reads `at` or later on `day`."""
    naive = datetime.combine(day, at)
    earlier = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)  # first of a repeated time
    if earlier.astimezone(zone).replace(tzinfo=None) == naive:
        return earlier
    # `at` falls in a spring-forward gap: open at the jump. fold=1 reads the time with the
    # offset after the jump, which lands before it; fold=0 lands after. Bisect to the second.
    lo = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = earlier
    if lo >= hi:
        return earlier
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0) if hi.microsecond else hi


def _parse_span(t: Table, key: str, text: str) -> Span:
    m = _SPAN.match(text.replace(" ", ""))
    if not m:
        raise t.error(key, text, 'opening hours as "HH:MM-HH:MM" (e.g. "10:00-18:00", "20:00-02:00")')
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise t.error(key, text, "hours 00-23 (24:00 as a closing time), minutes 00-59")
    return time(h1, m1), (time(0, 0) if h2 == 24 else time(h2, m2))


def _parse_spans(t: Table, key: str) -> tuple[Span, ...] | None:
    v = t.raw(key)
    if v is None:
        return None
    spans = v if isinstance(v, list) else [v]
    if not spans or not all(isinstance(s, str) for s in spans):
        raise t.error(key, v, 'a span "HH:MM-HH:MM" or a list of them')
    return tuple(_parse_span(t, key, s) for s in spans)


def _parse_dates(t: Table, key: str) -> frozenset[date]:
    v = t.raw(key, [])
    if not isinstance(v, list):
        raise t.error(key, v, 'a list of dates, e.g. ["2026-12-25"]')
    out = set()
    for d in v:
        if isinstance(d, date) and not isinstance(d, datetime):  # a bare TOML date
            out.add(d)
            continue
        try:
            out.add(date.fromisoformat(d))
        except (TypeError, ValueError):
            raise t.error(key, d, 'dates as "YYYY-MM-DD"') from None
    return frozenset(out)


@dataclass(frozen=True)
class InstallSettings:
    """A setlist's [install] table. Times are local to `timezone` (None: the machine's zone)."""

    loop: bool = True
    hours: Mapping[int, tuple[Span, ...]] = field(default_factory=dict)  # weekday 0=Mon -> spans
    always_open: bool = True  # no [install.hours] at all
    closed: frozenset[date] = frozenset()
    timezone: str | None = None
    daily_restart: time | None = None
    safe_setlist: str | None = None
    unlock_chord: str = DEFAULT_CHORD
    # local date -> open intervals; init=False so dataclasses.replace() starts a fresh cache
    _intervals: dict = field(default_factory=dict, init=False, compare=False, repr=False)

    @classmethod
    def from_table(cls, t: Table) -> InstallSettings:
        """Read and validate an [install] table; a bad value raises one-line ConfigError."""
        hours_t = t.sub("hours")
        hours: dict[int, tuple[Span, ...]] = {}
        for i, day in enumerate(DAYS):
            spans = _parse_spans(hours_t, day)
            if spans is not None:
                hours[i] = spans
        for key in EVERY_DAY_KEYS:  # a named weekday overrides "daily"
            spans = _parse_spans(hours_t, key)
            if spans is not None:
                for i in range(7):
                    hours.setdefault(i, spans)
        hours_t.check_unknown()
        tz = t.str("timezone", None)
        if tz:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise t.error("timezone", tz, 'an IANA time zone such as "Europe/Berlin"') from None
        restart = t.str("daily_restart", None)
        restart_t = None
        if restart is not None:
            m = _CLOCK.match(restart.strip())
            if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
                raise t.error("daily_restart", restart, 'a time as "HH:MM"')
            restart_t = time(int(m.group(1)), int(m.group(2)))
        chord = (t.str("unlock_chord", DEFAULT_CHORD) or DEFAULT_CHORD).lower().replace(" ", "")
        parts = chord.split("+")
        if len(parts) < 2 or not parts[-1] or parts[-1] in CHORD_MODIFIERS \
                or any(p not in CHORD_MODIFIERS for p in parts[:-1]):
            raise t.error("unlock_chord", chord, 'one or more of ctrl/shift/alt and a key, e.g. "ctrl+shift+u"')
        settings = cls(loop=bool(t.bool("loop", True)), hours=hours, always_open=not hours_t.data,
                       closed=_parse_dates(t, "closed"), timezone=tz, daily_restart=restart_t,
                       safe_setlist=t.str("safe_setlist", None), unlock_chord=chord)
        t.check_unknown()
        return settings

    # -- time ------------------------------------------------------------------------------------
    def zone(self) -> tzinfo:
        """The installation's time zone."""
        return ZoneInfo(self.timezone) if self.timezone else local_zone()

    def _utc(self, wall: datetime) -> datetime:
        """A naive wall time is read as local to the installation."""
        if wall.tzinfo is None:
            wall = wall.replace(tzinfo=self.zone())
        return wall.astimezone(UTC)

    def _opening(self, day: date) -> list[Interval]:
        """Open intervals of the spans that start on local date `day`."""
        cached = self._intervals.get(day)
        if cached is not None:
            return cached
        out: list[Interval] = []
        if day not in self.closed:
            zone = self.zone()
            spans = ((time(0), time(0)),) if self.always_open else self.hours.get(day.weekday(), ())
            for start, end in spans:
                close_day = day if end > start else day + timedelta(days=1)
                a, b = first_instant(day, start, zone), first_instant(close_day, end, zone)
                if b > a:
                    out.append((a, b))
        if len(self._intervals) >= _CACHE_DAYS:
            self._intervals.clear()
        self._intervals[day] = out
        return out

    def is_open(self, wall: datetime) -> bool:
        """Is the installation open at this engine wall time (tz-aware, from clock.wall())?"""
        u = self._utc(wall)
        today = u.astimezone(self.zone()).date()
        return any(a <= u < b for d in (today - timedelta(days=1), today) for a, b in self._opening(d))

    def next_change(self, wall: datetime, horizon_days: int = 14) -> datetime:
        """When open/closed flips next (in the installation's zone); wall + horizon if not within it."""
        u = self._utc(wall)
        zone = self.zone()
        today = u.astimezone(zone).date()
        spans = sorted(iv for i in range(-1, horizon_days + 1) for iv in self._opening(today + timedelta(days=i)))
        merged: list[list[datetime]] = []
        for a, b in spans:  # abutting spans ("20:00-24:00" then "00:00-02:00") are one opening
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        for a, b in merged:
            if a <= u < b:
                return b.astimezone(zone)
            if a > u:
                return a.astimezone(zone)
        return (u + timedelta(days=horizon_days)).astimezone(zone)

    def restart_due(self, last_start_wall: datetime, wall: datetime) -> bool:
        """Has a daily restart time come since the engine started? (Catches up after a missed day.)"""
        if self.daily_restart is None:
            return False
        u, started = self._utc(wall), self._utc(last_start_wall)
        zone = self.zone()
        today = u.astimezone(zone).date()
        latest = first_instant(today, self.daily_restart, zone)
        if latest > u:
            latest = first_instant(today - timedelta(days=1), self.daily_restart, zone)
        return started < latest <= u
