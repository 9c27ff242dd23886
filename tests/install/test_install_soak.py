"""A short soak (two simulated hours in ~40 s): the engine under --install at --time-scale 200
crosses a closing and an opening, and its memory, threads, open files and processes stay put.
The full soak (24 simulated hours) is `python bench/soak.py`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest
from conftest import ROOT

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (ROOT / "performance" / "engine.py").exists(), reason="no engine yet")]

sys.path.insert(0, str(ROOT / "bench"))


def hhmm(t: datetime) -> str:
    return t.strftime("%H:%M")


def test_short_soak_crosses_closing_and_opening_and_holds_steady(tmp_path):
    import soak

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # open now, closed from +45 to +65 simulated minutes, open again until the end
    spans = [f"{hhmm(now - timedelta(minutes=5))}-{hhmm(now + timedelta(minutes=45))}",
             f"{hhmm(now + timedelta(minutes=65))}-{hhmm(now + timedelta(hours=4))}"]
    setlist = tmp_path / "short-soak.toml"
    setlist.write_text(f"""name = "short-soak"
loop = true

[[scene]]
file = "scenes/reading-voice.toml"
duration = 300

[[scene]]
file = "scenes/markov-stream.toml"
duration = 300

[install]
timezone = "UTC"

[install.hours]
daily = {spans!r}
""".replace("'", '"'))
    f, code = soak.run_soak(str(setlist), hours=2.0, time_scale=200.0, warmup=0.3, out=tmp_path)
    detail = f"{f}\n{(tmp_path / 'stderr.log').read_text()[-2000:]}"
    assert code == 0, detail
    assert f["open_close_changes"] == 2, detail  # closed at +45 min, open again at +65 min
    events = soak.read_events(tmp_path / "sessions")
    sched = [e for e in events if e.get("event") == "command" and e.get("source") == "schedule"]
    assert [e["address"] for e in sched] == ["/lectern/blackout", "/lectern/resume"]
    closed_t, reopened_t = sched[0]["t"], sched[1]["t"]
    assert abs(closed_t - 45 * 60) < 120 and abs(reopened_t - 65 * 60) < 120, (closed_t, reopened_t)
    while_closed = [e for e in events if e.get("event") == "poem_start"
                    and closed_t + 10 < e["t"] < reopened_t - 10]  # a frame is 3.3 engine s at 200x
    assert not while_closed, f"generation must idle while closed ({closed_t:.0f}-{reopened_t:.0f} s): {while_closed}"
    assert f["poems"] >= 20 and f["status_poems"] is not None and f["status_poems"] >= 0.9 * f["poems"], detail
    # the two scenes alternate every 5 simulated minutes, so both halves see the same mix
    assert f["poems_per_open_sim_hour_second_half"] >= 0.7 * f["poems_per_open_sim_hour_first_half"] > 0, detail
    for k in ("threads", "fds", "tree_procs", "tree_threads", "tree_fds"):
        assert f[f"{k}_end"] <= f[f"{k}_start"], (k, detail)
    assert f["rss_growth_pct"] < 25, detail  # a short run is mostly warm-up; the 24 h soak holds < 5 %
