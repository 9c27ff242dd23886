"""Opening hours: weekdays, spans crossing midnight, closed dates, DST days (Berlin, New York), the
engine's fixed-offset wall clock, daily restart, and the one-line errors of the [install] table."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from performance.show import hours as hours_mod
from performance.show.hours import InstallSettings, first_instant
from performance.show.schema import ConfigError, Table

BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")


def settings(**kw) -> InstallSettings:
    return InstallSettings.from_table(Table(kw, "setlists/g.toml", "install"))


def at(y, mo, d, h, mi=0, tz=BERLIN, fold=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz, fold=fold)


def openings(s: InstallSettings, start: datetime, days: int, step_min: int = 1) -> list[datetime]:
    """Every instant (minute resolution) where the installation goes from closed to open."""
    t = start.astimezone(UTC)  # step real time: aware arithmetic in one zone is wall-clock arithmetic
    out, was = [], s.is_open(t)
    for _ in range(days * 24 * 60 // step_min):
        t += timedelta(minutes=step_min)
        now = s.is_open(t)
        if now and not was:
            out.append(t)
        was = now
    return out


def test_weekday_hours_and_missing_days_closed():
    s = settings(timezone="Europe/Berlin", hours={"tue": "10:00-18:00"})
    assert s.is_open(at(2026, 11, 24, 10, 0))  # a Tuesday
    assert not s.is_open(at(2026, 11, 24, 9, 59))
    assert not s.is_open(at(2026, 11, 24, 18, 0))
    assert not s.is_open(at(2026, 11, 25, 12, 0))  # Wednesday: not listed, closed
    assert s.next_change(at(2026, 11, 25, 12, 0)) == at(2026, 12, 1, 10, 0)  # next Tuesday


def test_span_crossing_midnight_belongs_to_the_day_it_starts():
    s = settings(timezone="Europe/Berlin", hours={"fri": ["10:00-18:00", "20:00-01:00"]},
                 closed=["2026-12-04"])
    assert s.is_open(at(2026, 11, 27, 23, 30))  # Friday night
    assert s.is_open(at(2026, 11, 28, 0, 59))  # after midnight: Saturday, Friday's span
    assert not s.is_open(at(2026, 11, 28, 1, 0))
    assert not s.is_open(at(2026, 11, 28, 19, 0))
    assert s.next_change(at(2026, 11, 27, 21)) == at(2026, 11, 28, 1, 0)
    # a closed Friday silences its own night, and the next change is the Friday after
    assert not s.is_open(at(2026, 12, 4, 23, 0)) and not s.is_open(at(2026, 12, 5, 0, 30))
    assert s.next_change(at(2026, 12, 4, 9)) == at(2026, 12, 11, 10, 0)


def test_night_before_a_closed_date_still_runs_past_midnight_into_it():
    s = settings(timezone="Europe/Berlin", hours={"daily": "20:00-02:00"}, closed=["2026-12-25"])
    assert s.is_open(at(2026, 12, 25, 1, 0))  # Christmas Eve's night
    assert not s.is_open(at(2026, 12, 25, 21, 0))
    assert s.next_change(at(2026, 12, 25, 1, 0)) == at(2026, 12, 25, 2, 0)
    assert s.next_change(at(2026, 12, 25, 2, 0)) == at(2026, 12, 26, 20, 0)


def test_abutting_spans_are_one_opening_and_24_00_closes_at_midnight():
    s = settings(timezone="Europe/Berlin", hours={"sat": "18:00-24:00", "sun": "00:00-03:00"})
    assert s.is_open(at(2026, 11, 28, 23, 59)) and s.is_open(at(2026, 11, 29, 0, 0))
    assert s.next_change(at(2026, 11, 28, 19)) == at(2026, 11, 29, 3, 0)  # not midnight


def test_no_hours_means_always_open_except_closed_dates():
    assert settings().is_open(at(2026, 12, 25, 3))
    s = settings(timezone="Europe/Berlin", closed=["2026-12-25"])
    assert not s.is_open(at(2026, 12, 25, 3)) and s.is_open(at(2026, 12, 24, 23, 59))
    assert s.next_change(at(2026, 12, 20, 12)) == at(2026, 12, 25, 0, 0)
    assert s.next_change(at(2026, 12, 25, 12)) == at(2026, 12, 26, 0, 0)
    always = settings(timezone="Europe/Berlin")
    assert always.next_change(at(2026, 12, 20, 12), horizon_days=3) >= at(2026, 12, 23, 12)


def test_starting_during_opening_hours_is_open_at_once():
    s = settings(timezone="Europe/Berlin", hours={"daily": "10:00-18:00"})
    now = at(2026, 11, 24, 15, 17)
    assert s.is_open(now)
    assert s.next_change(now) == at(2026, 11, 24, 18, 0)


@pytest.mark.parametrize(("tz", "spring", "autumn"), [(BERLIN, date(2027, 3, 28), date(2026, 10, 25)),
                                                      (NY, date(2027, 3, 14), date(2026, 11, 1))])
def test_dst_days_open_and_close_at_the_written_local_times(tz, spring, autumn):
    s = settings(timezone=str(tz), hours={"daily": "01:30-04:00"})
    for day, hours_open in ((spring, 1.5), (autumn, 3.5)):  # the clock loses / gains an hour inside
        opened = datetime.combine(day, datetime.min.time().replace(hour=1, minute=45), tzinfo=tz)
        closes = s.next_change(opened)
        assert (closes.hour, closes.minute, closes.date()) == (4, 0, day)
        opens = s.next_change(closes)
        assert (opens.hour, opens.minute, opens.date()) == (1, 30, day + timedelta(days=1))
        start = first_instant(day, datetime.min.time().replace(hour=1, minute=30), tz)
        assert (closes - start) == timedelta(hours=hours_open)


@pytest.mark.parametrize(("tz", "spring", "autumn"), [(BERLIN, date(2027, 3, 28), date(2026, 10, 25)),
                                                      (NY, date(2027, 3, 14), date(2026, 11, 1))])
def test_a_week_across_each_dst_change_opens_exactly_once_a_day(tz, spring, autumn):
    s = settings(timezone=str(tz), hours={"daily": ["02:30-03:30"]})  # inside the gap / repeated hour
    for day in (spring, autumn):
        start = datetime.combine(day - timedelta(days=3), datetime.min.time(), tzinfo=tz)
        opened = openings(s, start, days=7)
        assert [o.astimezone(tz).date() for o in opened] == [start.date() + timedelta(days=i) for i in range(7)]


def test_spring_gap_opens_at_the_jump_and_autumn_repeat_counts_once():
    s = settings(timezone="Europe/Berlin", hours={"daily": "02:30-02:45"})
    # 2027-03-28 the clock jumps 02:00 -> 03:00: 02:30 and 02:45 both land on 03:00, an empty span
    assert s.next_change(at(2027, 3, 28, 1, 0)) == at(2027, 3, 29, 2, 30)
    s = settings(timezone="Europe/Berlin", hours={"daily": "02:30-05:00"})
    assert s.next_change(at(2027, 3, 28, 1, 0)) == at(2027, 3, 28, 3, 0)
    # 2026-10-25 02:00-03:00 happens twice: the span opens the first time only
    s = settings(timezone="Europe/Berlin", hours={"daily": "02:15-02:45"})
    assert s.is_open(at(2026, 10, 25, 2, 30, fold=0))
    assert not s.is_open(at(2026, 10, 25, 2, 30, fold=1))


def test_engine_wall_clock_keeps_its_start_offset_across_dst():
    # clock.wall() = start wall (fixed +01:00) + engine seconds: still the right instant a day later
    s = settings(timezone="Europe/Berlin", hours={"daily": "13:00-14:00"})
    wall0 = datetime(2027, 3, 27, 12, 30, tzinfo=timezone(timedelta(hours=1)))
    assert not s.is_open(wall0)
    assert s.is_open(wall0 + timedelta(hours=24))  # 12:30+01:00 is 13:30 CEST on Sunday


def test_timezone_unset_follows_the_machine_zone_with_its_dst_rules(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    hours_mod.local_zone.cache_clear()
    try:
        s = settings(hours={"daily": "10:00-18:00"})
        assert s.is_open(datetime(2026, 11, 2, 15, 30, tzinfo=UTC))  # 10:30 EST
        assert not s.is_open(datetime(2026, 11, 2, 14, 30, tzinfo=UTC))  # 09:30 EST
        assert s.is_open(datetime(2026, 11, 2, 10, 30))  # naive: read as local
        nxt = s.next_change(datetime(2026, 10, 31, 23, 0, tzinfo=UTC))  # 19:00 EDT Saturday
        assert nxt == datetime(2026, 11, 1, 10, 0, tzinfo=NY)  # Sunday after the change, 10:00 EST
    finally:
        hours_mod.local_zone.cache_clear()


def test_daily_restart_due_once_and_catches_up():
    s = settings(timezone="Europe/Berlin", daily_restart="06:30")
    start = at(2026, 11, 24, 12)
    assert not s.restart_due(start, at(2026, 11, 25, 6, 29))
    assert s.restart_due(start, at(2026, 11, 25, 6, 30))
    assert not s.restart_due(at(2026, 11, 25, 6, 31), at(2026, 11, 26, 6, 0))  # restarted already
    assert s.restart_due(start, at(2026, 11, 27, 5, 0))  # missed days still restart
    assert not settings().restart_due(start, at(2026, 12, 24, 12))
    # in the spring gap the restart happens at the jump
    g = settings(timezone="Europe/Berlin", daily_restart="02:30")
    assert g.restart_due(at(2027, 3, 27, 12), at(2027, 3, 28, 3, 0))
    assert not g.restart_due(at(2027, 3, 27, 12), at(2027, 3, 28, 1, 59))


def test_calls_are_fast_enough_for_the_frame_loop():
    # a long holiday: the next opening is two weeks away; a minute-by-minute scan took ~200 ms here
    closed = [(date(2026, 12, 20) + timedelta(days=i)).isoformat() for i in range(14)]
    t0 = time.perf_counter()
    for i in range(50):
        s = settings(timezone="Europe/Berlin", hours={"daily": "10:00-18:00"}, closed=closed)
        now = at(2026, 12, 21, 12) + timedelta(minutes=i)
        assert not s.is_open(now)
        assert s.next_change(now, horizon_days=20) == at(2027, 1, 3, 10, 0)
    assert (time.perf_counter() - t0) / 50 < 0.005  # fresh objects, nothing cached: ~0.3 ms each


def test_settings_defaults_and_values():
    s = settings(loop=False, safe_setlist="setlists/safe.toml", unlock_chord="Ctrl+Alt+K",
                 closed=[date(2026, 12, 25)], hours={"daily": "10:00-12:00", "mon": "09:00-10:00"})
    assert (s.loop, s.safe_setlist, s.unlock_chord) == (False, "setlists/safe.toml", "ctrl+alt+k")
    assert s.closed == frozenset({date(2026, 12, 25)})  # a bare TOML date works too
    assert s.hours[0] == ((datetime.min.time().replace(hour=9), datetime.min.time().replace(hour=10)),)
    assert len(s.hours) == 7
    d = settings()
    assert (d.loop, d.always_open, d.unlock_chord, d.timezone, d.daily_restart) == (True, True, "ctrl+shift+u",
                                                                                      None, None)


@pytest.mark.parametrize(("table", "names"), [
    ({"hours": {"mon": "10-18"}}, ["install.hours.mon", "HH:MM-HH:MM"]),
    ({"hours": {"mon": "10:00-25:00"}}, ["install.hours.mon", "24:00"]),
    ({"hours": {"monday": "10:00-18:00"}}, ["install.hours.monday", "unknown key"]),
    ({"hours": {"tue": [10]}}, ["install.hours.tue", "list of them"]),
    ({"timezone": "Mars/Olympus"}, ["install.timezone", "Europe/Berlin"]),
    ({"closed": ["25.12.2026"]}, ["install.closed", "YYYY-MM-DD"]),
    ({"closed": "2026-12-25"}, ["install.closed", "a list of dates"]),
    ({"daily_restart": "6.30"}, ["install.daily_restart", "HH:MM"]),
    ({"unlock_chord": "u"}, ["install.unlock_chord", "ctrl/shift/alt"]),
    ({"unlock_chord": "ctrl+meta+u"}, ["install.unlock_chord"]),
    ({"opening": "10:00"}, ["install.opening", "unknown key"]),
])
def test_bad_install_values_give_one_line_naming_file_key_and_what_is_allowed(table, names):
    with pytest.raises(ConfigError) as e:
        settings(**table)
    msg = str(e.value)
    assert "\n" not in msg and "setlists/g.toml" in msg
    for n in names:
        assert n in msg


def test_a_replaced_copy_does_not_share_the_cache():
    import dataclasses
    from datetime import time as dtime

    s = settings(timezone="Europe/Berlin", hours={"daily": "10:00-18:00"})
    assert s.is_open(at(2026, 11, 24, 12))
    late = dataclasses.replace(s, hours={i: ((dtime(10), dtime(11)),) for i in range(7)})
    assert not late.is_open(at(2026, 11, 24, 12)) and s.is_open(at(2026, 11, 24, 12))
