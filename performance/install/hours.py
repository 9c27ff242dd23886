"""A setlist's [install] table: loop, opening hours per weekday (crossing midnight allowed), closed
dates, time zone, daily restart, safe setlist, unlock chord.

Hours are local wall-clock times in the installation's time zone, read off the ENGINE's notion of
wall time (clock.wall()), so `--time-scale` crosses closing time in a soak. A day with a DST change
opens and closes at the written local times: no day is skipped or doubled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from performance.show.schema import Table

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
DEFAULT_CHORD = "ctrl+shift+u"


def _parse_span(t: Table, key: str, text: str) -> tuple[time, time]:
    m = _SPAN.match(text.replace(" ", ""))
    if not m:
        raise t.error(key, text, 'opening hours as "HH:MM-HH:MM" (e.g. "10:00-18:00", "20:00-02:00")')
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise t.error(key, text, "hours 00–24, minutes 00–59")
    return time(h1, m1), (time(0, 0) if h2 == 24 else time(h2, m2))


@dataclass(frozen=True)
class InstallSettings:
    loop: bool = True
    hours: dict[int, tuple[tuple[time, time], ...]] = field(default_factory=dict)  # weekday 0=Mon
    always_open: bool = True
    closed: frozenset[date] = frozenset()
    timezone: str | None = None
    daily_restart: time | None = None
    safe_setlist: str | None = None
    unlock_chord: str = DEFAULT_CHORD

    @classmethod
    def from_table(cls, t: Table) -> InstallSettings:
        hours_t = t.sub("hours")
        hours: dict[int, list] = {}
        for i, day in enumerate(DAYS):
            v = hours_t.raw(day)
            if v is None:
                continue
            spans = v if isinstance(v, list) else [v]
            if not all(isinstance(s, str) for s in spans):
                raise hours_t.error(day, v, 'a span "HH:MM-HH:MM" or a list of them')
            hours[i] = [_parse_span(hours_t, day, s) for s in spans]
        for k in ("daily", "every_day"):
            v = hours_t.raw(k)
            if v is not None:
                spans = v if isinstance(v, list) else [v]
                for i in range(7):
                    hours.setdefault(i, [_parse_span(hours_t, k, s) for s in spans])
        hours_t.check_unknown()
        closed = set()
        for d in t.list("closed", [], str) or []:
            try:
                closed.add(date.fromisoformat(d))
            except ValueError:
                raise t.error("closed", d, 'dates as "YYYY-MM-DD"') from None
        tz = t.str("timezone", None)
        if tz:
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise t.error("timezone", tz, 'an IANA time zone such as "Europe/Berlin"') from None
        restart = t.str("daily_restart", None)
        restart_t = None
        if restart:
            m = re.match(r"^(\d{1,2}):(\d{2})$", restart)
            if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
                raise t.error("daily_restart", restart, 'a time as "HH:MM"')
            restart_t = time(int(m.group(1)), int(m.group(2)))
        chord = t.str("unlock_chord", DEFAULT_CHORD)
        parts = chord.lower().split("+")
        if not parts[-1] or any(p not in ("ctrl", "shift", "alt") for p in parts[:-1]):
            raise t.error("unlock_chord", chord, 'modifiers ctrl/shift/alt and a key, e.g. "ctrl+shift+u"')
        s = cls(loop=t.bool("loop", True), hours={k: tuple(v) for k, v in hours.items()},
                always_open=not hours_t.data, closed=frozenset(closed), timezone=tz, daily_restart=restart_t,
                safe_setlist=t.str("safe_setlist", None), unlock_chord=chord.lower())
        t.check_unknown()
        return s

    def _local(self, wall: datetime) -> datetime:
        if self.timezone:
            return wall.astimezone(ZoneInfo(self.timezone))
        return wall.astimezone() if wall.tzinfo else wall

    def _open_local(self, local: datetime) -> bool:
        """Open at this local (naive wall) time? Spans crossing midnight belong to the day they start."""
        d, tod = local.date(), local.time().replace(tzinfo=None)
        for day, spans_day in ((d, 0), (d - timedelta(days=1), 1)):
            if day in self.closed:
                continue
            for start, end in self.hours.get(day.weekday(), ()):
                crosses = end <= start
                if spans_day == 0:
                    if (not crosses and start <= tod < end) or (crosses and tod >= start):
                        return True
                elif crosses and tod < end:
                    return True
        return False

    def is_open(self, wall: datetime) -> bool:
        if self.always_open:
            return wall.date() not in self.closed if self.closed else True
        return self._open_local(self._local(wall))

    def next_change(self, wall: datetime, horizon_days: int = 14) -> datetime:
        """When open/closed next flips (minute resolution), or wall + horizon if never."""
        now = self.is_open(wall)
        step = timedelta(minutes=1)
        t = wall.replace(second=0, microsecond=0) + step
        end = wall + timedelta(days=horizon_days)
        while t < end:
            if self.is_open(t) != now:
                return t
            t += step
        return end

    def restart_due(self, last_start_wall: datetime, wall: datetime) -> bool:
        """Has the daily restart time passed since the engine started?"""
        if self.daily_restart is None:
            return False
        local_now, local_start = self._local(wall), self._local(last_start_wall)
        today = local_now.replace(hour=self.daily_restart.hour, minute=self.daily_restart.minute, second=0,
                                  microsecond=0)
        return local_start < today <= local_now
