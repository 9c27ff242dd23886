"""Installations: opening hours (midnight, holidays, DST), the supervisor with real child processes,
status, faults survived by a headless --install engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from conftest import ROOT

from performance.install.status import describe
from performance.install.supervisor import backoff, supervise
from performance.show.hours import InstallSettings
from performance.show.schema import ConfigError, Table


def hours(**kw) -> InstallSettings:
    return InstallSettings.from_table(Table(kw, "setlists/g.toml", "install"))


BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")


def at(y, mo, d, h, mi=0, tz=BERLIN) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz)


def test_weekday_hours_and_missing_days_closed():
    s = hours(timezone="Europe/Berlin", hours={"tue": "10:00-18:00"})
    assert s.is_open(at(2026, 11, 24, 10, 0))  # a Tuesday
    assert not s.is_open(at(2026, 11, 24, 9, 59))
    assert not s.is_open(at(2026, 11, 24, 18, 0))
    assert not s.is_open(at(2026, 11, 25, 12, 0))  # Wednesday: not listed, closed


def test_hours_crossing_midnight_belong_to_the_day_they_start():
    s = hours(timezone="Europe/Berlin", hours={"fri": ["10:00-18:00", "20:00-01:00"]})
    assert s.is_open(at(2026, 11, 27, 23, 30))  # Friday night
    assert s.is_open(at(2026, 11, 28, 0, 30))  # after midnight, Saturday
    assert not s.is_open(at(2026, 11, 28, 1, 0))
    assert not s.is_open(at(2026, 11, 28, 19, 0))


def test_closed_dates_and_no_hours_means_always_open():
    s = hours(timezone="Europe/Berlin", hours={"daily": "10:00-18:00"}, closed=["2026-12-25"])
    assert not s.is_open(at(2026, 12, 25, 12))
    assert s.is_open(at(2026, 12, 26, 12))
    assert hours().is_open(at(2026, 12, 25, 3))


@pytest.mark.parametrize(("tz", "spring", "autumn"), [(BERLIN, (2027, 3, 28), (2026, 10, 25)),
                                                      (NY, (2027, 3, 14), (2026, 11, 1))])
def test_dst_days_open_and_close_at_the_written_local_times(tz, spring, autumn):
    s = hours(timezone=str(tz), hours={"daily": "01:30-04:00"})
    for day in (spring, autumn):
        # the engine's wall clock in UTC, converted: open at 01:30 local, closed at 04:00 local
        assert s.is_open(datetime(*day, 1, 45, tzinfo=tz))
        assert not s.is_open(datetime(*day, 4, 30, tzinfo=tz))
        nxt = s.next_change(datetime(*day, 5, 0, tzinfo=tz))
        local = nxt.astimezone(tz)
        assert (local.hour, local.minute) == (1, 30)  # the next day opens at its written time
        assert local.date() > datetime(*day).date()


def test_starting_during_opening_hours_is_open_and_next_change_is_closing():
    s = hours(timezone="Europe/Berlin", hours={"daily": "10:00-18:00"})
    now = at(2026, 11, 24, 15, 17)
    assert s.is_open(now)
    assert s.next_change(now).astimezone(BERLIN).hour == 18


def test_bad_install_values_give_one_line():
    with pytest.raises(ConfigError) as e:
        hours(hours={"mon": "10-18"})
    assert "install.hours.mon" in str(e.value) and "HH:MM-HH:MM" in str(e.value)
    with pytest.raises(ConfigError, match="install.timezone"):
        hours(timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="install.closed"):
        hours(closed=["25.12.2026"])


def test_daily_restart_due():
    s = hours(timezone="Europe/Berlin", daily_restart="06:30")
    assert s.restart_due(at(2026, 11, 24, 12), at(2026, 11, 25, 6, 31))
    assert not s.restart_due(at(2026, 11, 24, 12), at(2026, 11, 25, 6, 29))


def test_backoff_sequence():
    assert [backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def child(code: str) -> list[str]:
    return [sys.executable, "-c", code]


BEAT = "import os,time\nfor i in range({n}):\n  open(os.environ['LECTERN_HEARTBEAT'],'w').write('x'); time.sleep(0.1)\n"


def test_supervisor_restarts_a_crashed_child_with_backoff(tmp_path):
    waits = []
    code = supervise(["play", "x.toml"], child=child("import sys; sys.exit(3)"), max_restarts=3, sleep=waits.append)
    assert code == 1 and waits == [1, 2]


def test_supervisor_kills_a_hung_child(tmp_path):
    marker = tmp_path / "runs"
    hang = BEAT.format(n=3) + f"open({str(marker)!r},'a').write('x')\ntime.sleep(60)\n"
    t0 = time.monotonic()
    code = supervise(["play", "x.toml"], child=child(hang), hang_s=1.0, grace_s=5, max_restarts=2, sleep=lambda s: None)
    assert code == 1 and marker.read_text() == "xx" and time.monotonic() - t0 < 20


def test_supervisor_returns_when_the_child_ends_well():
    assert supervise(["play", "x.toml"], child=child(BEAT.format(n=2))) == 0


def test_supervisor_falls_back_to_the_safe_setlist(tmp_path, monkeypatch):
    seen = []
    real_popen = subprocess.Popen

    def spy(cmd, *a, **kw):
        seen.append(cmd)
        return real_popen(child("import sys; sys.exit(1)"), *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", spy)
    supervise(["play", "setlists/gallery.toml"], max_crashes=3, max_restarts=4, sleep=lambda s: None)
    assert "setlists/gallery.toml" in seen[0] and "setlists/safe.toml" in seen[-1]
    assert all("--install" in c for c in seen)


def test_status_description_and_staleness():
    data = {"written": time.time(), "setlist": "g", "scene": "s", "open": True, "uptime_s": 7200, "fps": 60,
            "poems": 5, "restarts": 1, "rss_mb": 200, "errors": ["model x: missing"]}
    text = describe(data)
    assert "running" in text and "2.00 h" in text and "model x" in text
    assert "NOT RUNNING" in describe({**data, "written": time.time() - 600})


def play_install(tmp_path, *extra, env_extra=None, duration=14, scale=1.0):
    env = {**os.environ, "LECTERN_STATE_DIR": str(tmp_path), **(env_extra or {})}
    cmd = [sys.executable, "run.py", "play", "setlists/demo.toml", "--headless", "--window", "320x180", "--install",
           "--supervised", "--quiet", "--osc-port", "0", "--duration", str(duration), "--time-scale", str(scale),
           "--transcript-dir", str(tmp_path / "sessions"), "--stats-json", str(tmp_path / "s.json"), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def events_of(tmp_path) -> list[dict]:
    jsonl = next((tmp_path / "sessions").glob("*.jsonl"))
    return [json.loads(x) for x in jsonl.read_text().splitlines()]


def test_install_run_survives_a_killed_model_worker_and_a_killed_speech_worker(tmp_path):
    # 22 s: the poem written after the crash ends about 9 s after it (the voice reads it), with slack for a busy machine
    proc = play_install(tmp_path, env_extra={"LECTERN_FAULTS": "model_worker_crash"}, duration=22)
    # the first scene speaks: find the speech worker and kill it mid-run
    killed = False
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10 and not killed:
        out = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "speech_worker"], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        if pids and time.monotonic() - t0 > 4:
            os.kill(pids[0], signal.SIGKILL)
            killed = True
        time.sleep(0.2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert killed
    assert "generator worker died" in err and "speech worker died" in err
    events = events_of(tmp_path)
    ends = [e for e in events if e["event"] == "poem_end" and not e.get("partial")]
    assert ends and ends[-1]["n"] >= 2  # a whole poem written after the crashed one
    speech = [e for e in events if e["event"] == "speech"]
    assert speech and max(e["start"] for e in speech) > 4.0  # still speaking after the kill
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["restarts"] >= 1 and status["poems"] >= 2


def test_full_disk_pauses_transcripts_but_not_the_show(tmp_path):
    # 10 s: start-up (torch, the models) takes up to 4-5 s of the engine clock on a busy 2-core machine
    proc = play_install(tmp_path, env_extra={"LECTERN_FAULTS": "disk_full,display_changed"}, duration=10)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames"] > 100
    jsonl = next((tmp_path / "sessions").glob("*.jsonl"))
    assert jsonl.stat().st_size == 0  # nothing written while the disk is "full"
    assert "writing paused" in err and "display changed" in err


def test_missing_model_falls_back_to_default(tmp_path):
    (tmp_path / "s.toml").write_text('[[scene]]\nmodel = "markov"\nlength = { lines = 2 }\n'
                                      'pacing = { reveal = "instant", hold = 0.2 }\n')
    from performance.show.config import load_setlist
    from performance.simulate import simulate

    sl = load_setlist(tmp_path / "s.toml")
    calls = []

    def loader(name):
        calls.append(name)
        if name == "markov":
            from performance.textgen.base import ModelFileError

            raise ModelFileError("models/markov/model.safetensors: missing (fault)")
        from performance.textgen import load_model

        return load_model("markov")

    events = simulate(sl, 3, loader=loader)
    err = [e for e in events if e["event"] == "error"]
    assert err and err[0]["fallback"] == "default" and "missing" in err[0]["detail"]
    assert [e for e in events if e["event"] == "poem_end"]
    assert calls[:2] == ["markov", "default"]
