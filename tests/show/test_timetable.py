"""[[at]] wall-clock triggers on the `schedule` library, driven by the engine's wall time: a day's
timetable under a fake clock fires exactly at its times, DST days in Berlin included (the zone's
rules as opening hours use them), weekdays and `until`; and bad entries are one line at `check`."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import schedule
from conftest import ROOT

from performance.show.clock import FakeClock
from performance.show.config import load_setlist
from performance.show.schema import ConfigError
from performance.show.timetable import Timetable, parse_timetable

BERLIN = ZoneInfo("Europe/Berlin")
SCENES = ["main", "chime", "closing"]
DAY = [{"every": "hour", "at": ":00", "do": "scene chime"},
       {"time": "17:45", "do": "scene closing"},
       {"time": "02:30", "do": "volume 0.25"},
       {"every": "day", "at": "04:00", "do": "restart"}]


def run_day(entries: list[dict], start: datetime, hours: float, step_s: float = 15.0):
    """Tick a Timetable off a FakeClock's wall time; (local wall time of the tick, do) per firing."""
    clock = FakeClock(start_wall=start)
    tt = Timetable(parse_timetable(entries, "t.toml", SCENES, len(SCENES)), BERLIN)
    out = []
    for _ in range(int(hours * 3600 / step_s) + 1):
        for f in tt.tick(clock.wall()):
            out.append((clock.wall().astimezone(BERLIN), f.entry.do))
        clock.advance(step_s)
    return out


def local(day: datetime, hh: int, mm: int = 0, fold: int = 0) -> datetime:
    return day.replace(hour=hh, minute=mm, fold=fold)


@pytest.mark.parametrize("date, chimes, offset_1745", [
    ((2026, 11, 24), 24, 1),   # an ordinary Tuesday (CET)
    ((2026, 3, 29), 23, 2),    # spring forward: 02:00 -> 03:00, a 23-hour day
    ((2026, 10, 25), 24, 1),   # fall back: 03:00 -> 02:00, a 25-hour day with 24 distinct hours
])
def test_a_day_fires_exactly_at_its_wall_clock_times(date, chimes, offset_1745):
    day = datetime(*date, tzinfo=BERLIN)
    start = (day - timedelta(minutes=1)).astimezone(UTC)  # from 23:59 the day before ...
    end = (day + timedelta(days=1)).astimezone(UTC) - timedelta(seconds=15)  # ... to 23:59:45: 23, 24 or 25 h
    fired = run_day(DAY, start, hours=(end - start).total_seconds() / 3600)
    chime_at = [t for t, do in fired if do == "scene chime"]
    assert len(chime_at) == chimes
    assert all(t.minute == 0 and t.second == 0 for t in chime_at)
    closing = [t for t, do in fired if do == "scene closing"]
    assert closing == [local(day, 17, 45)]
    assert closing[0].utcoffset() == timedelta(hours=offset_1745)
    assert [t for t, do in fired if do == "restart"] == [local(day, 4)]
    vol = [t for t, do in fired if do == "volume 0.25"]
    assert len(vol) == 1  # never skipped, never doubled
    if date == (2026, 3, 29):
        # 02:30 does not exist: it fires at the jump (first instant the clock reads 02:30 or later),
        # and 02:00's chime with it; as opening hours read a time in the gap
        assert vol == [local(day, 3)] and local(day, 3) in chime_at and local(day, 2) not in chime_at
    elif date == (2026, 10, 25):
        # 02:30 happens twice: fires the first time (CEST), as opening hours count it
        assert vol == [local(day, 2, 30, fold=0)] and vol[0].utcoffset() == timedelta(hours=2)
    else:
        assert vol == [local(day, 2, 30)]


def test_weekdays_and_until():
    entries = [{"time": "12:00", "on": ["sat", "sun"], "do": "go"},
               {"every": "hour", "at": "30:00", "on": ["mon"], "do": "pause", "until": "2026-11-23 02:00"}]
    start = datetime(2026, 11, 16, 0, 0, tzinfo=BERLIN)  # a Monday
    fired = run_day(entries, start, hours=8 * 24, step_s=60)
    weekend = [t for t, do in fired if do == "go"]
    assert [t.strftime("%a %d %H:%M") for t in weekend] == ["Sat 21 12:00", "Sun 22 12:00"]
    mondays = [t for t, do in fired if do == "pause"]
    assert len(mondays) == 24 + 2  # Monday 16th every hour at :30; the 23rd until 02:00
    assert all(t.weekday() == 0 and t.minute == 30 for t in mondays)


def test_schedule_reads_the_engine_clock_only_inside_a_tick():
    """The engine's wall time reaches `schedule` through the tick; outside it, real time."""
    clock = FakeClock(start_wall=datetime(2030, 1, 1, 9, 59, 50, tzinfo=BERLIN))
    tt = Timetable(parse_timetable([{"time": "10:00", "do": "go"}], "t.toml", SCENES, 3), BERLIN)
    assert tt.tick(clock.wall()) == []
    assert abs((schedule.datetime.datetime.now() - datetime.now()).total_seconds()) < 5
    assert tt.upcoming(clock.wall())[0][0] == datetime(2030, 1, 1, 10, 0)
    clock.advance(10)
    [f] = tt.tick(clock.wall())
    cmd = f.command()
    assert (cmd.address, cmd.args, cmd.source) == ("/lectern/go", (), "schedule")
    assert tt.upcoming(clock.wall())[0][0] == datetime(2030, 1, 2, 10, 0)


def test_commands_are_validated_like_osc():
    [e] = parse_timetable([{"time": "10:00", "do": "volume 7"}], "t.toml", SCENES, 3)
    assert (e.address, e.args) == ("/lectern/volume", (1.0,))  # clamped as the OSC server clamps
    [e] = parse_timetable([{"time": "10:00", "do": "/lectern/scene 2"}], "t.toml", SCENES, 3)
    assert (e.address, e.args) == ("/lectern/scene", (2,))


@pytest.mark.parametrize("entry, message", [
    ({"time": "25:00", "do": "go"}, "key 'at[1].time' = '25:00': for every = \"day\": \"HH:MM\""),
    ({"every": "fortnight", "do": "go"}, "key 'at[1].every' = 'fortnight': allowed: day, hour, minute"),
    ({"every": "hour", "at": "12:00:00", "do": "go"}, "key 'at[1].at' = '12:00:00': for every = \"hour\""),
    ({"time": "10:00", "do": "dance"}, "key 'at[1].do' = 'dance': a command of `python run.py osc`"),
    ({"time": "10:00", "do": "scene nowhere"}, "'scene nowhere': no such scene"),
    ({"time": "10:00", "do": "volume loud"}, "'volume loud': volume needs 0..1"),
    ({"time": "10:00", "do": "go", "on": ["someday"]}, "key 'at[1].on' = ['someday']: a list of weekdays"),
    ({"time": "10:00", "do": "go", "unitl": "2027-01-01"}, "key 'at[1].unitl'"),
    ({"time": "10:00", "do": "go", "until": "soon"}, "key 'at[1].until' = 'soon'"),
])
def test_bad_entries_are_one_clear_line(entry, message):
    with pytest.raises(ConfigError) as e:
        parse_timetable([entry], "setlists/g.toml", SCENES, 3)
    assert str(e.value).startswith("setlists/g.toml: ") and message in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_check_reports_a_bad_time_and_accepts_the_gallery(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[scene]]\nfile = "%s"\n\n[[at]]\ntime = "25:00"\ndo = "go"\n' % (ROOT / "scenes/elo2015.toml"))
    r = subprocess.run([sys.executable, "run.py", "check", str(bad), "setlists/gallery.toml"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    lines = r.stdout.strip().splitlines()
    assert lines[0] == f"error {bad}: key 'at[1].time' = '25:00': for every = \"day\": \"HH:MM\" or " \
                       '"HH:MM:SS" from 00:00 to 23:59:59'
    assert lines[1].startswith("ok    setlists/gallery.toml: setlist (5 scenes, 4 [[at]])")
    g = load_setlist(ROOT / "setlists/gallery.toml")
    assert {(e.every, e.at, e.do) for e in g.timetable} >= {("hour", ":00", "scene chime"),
                                                            ("day", "17:45", "scene closing")}


@pytest.mark.slow
def test_play_fires_at_the_simulated_minute_and_the_transcript_wall_agrees(tmp_path):
    """End to end under --time-scale: the firing lands at its simulated time, and each event's
    "wall" is the engine's wall clock at its "t" (it was off by the start-up time x time-scale)."""
    from performance.record.transcript import read_events

    setlist = tmp_path / "at.toml"
    setlist.write_text(f'name = "at"\n\n[[scene]]\nfile = "{ROOT / "scenes/markov-stream.toml"}"\n\n'
                       '[[at]]\ntime = "17:00"\ndo = "volume 0.5"\n\n[install]\ntimezone = "Europe/Berlin"\n')
    r = subprocess.run([sys.executable, "run.py", "play", str(setlist), "--headless", "--quiet", "--osc-port", "0",
                        "--time-scale", "30", "--duration", "150", "--start-wall", "2026-11-27T16:58:00+01:00",
                        "--transcript-dir", str(tmp_path / "s")], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    [jsonl] = (tmp_path / "s").glob("*.jsonl")
    events = read_events(jsonl)
    [cmd] = [e for e in events if e["event"] == "command" and e["source"] == "schedule"]
    assert (cmd["address"], cmd["args"], cmd["applied"]) == ("/lectern/volume", [0.5], True)
    assert 120 <= cmd["t"] < 135, cmd  # at 17:00 (a frame is 0.5 engine s at 30x, more when the machine is busy)
    for e in (events[0], cmd):
        wall = datetime.fromisoformat(e["wall"])
        assert abs((wall - datetime(2026, 11, 27, 16, 58, tzinfo=BERLIN)).total_seconds() - e["t"]) < 0.002, e
