"""Nothing lost: independent writers, keeps answered after the disk has them, full disk held and
resumed, no torn lines, true wall times (issue 20 item 7, issue 12 items 5 and 8)."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime

from performance.record.transcript import TranscriptWriter, read_events, session_wall0
from performance.show.clock import MonotonicClock


def ev(t: float, event: str = "pause", **kw) -> dict:
    return {"t": t, "event": event, **kw}


def test_unwritable_harvest_answers_error_and_stops_nothing_else(tmp_path):
    (tmp_path / "harvest.txt").mkdir()  # a harvest.txt that cannot be written (root ignores chmod)
    w = TranscriptWriter(tmp_path, "s", datetime(2026, 1, 1))
    w.start()
    answers: list = []
    done = threading.Event()
    w.keep("a poem", "footer", lambda ok, d: (answers.append((ok, d)), done.set()))
    for i in range(5):
        w.write(ev(float(i), "poem_end", n=i, text=f"poem {i}"))
    assert done.wait(5)
    w.close()
    assert answers[0][0] is False and "harvest.txt" in answers[0][1]
    assert len(read_events(w.jsonl_path)) == 5 and "poem 4" in w.txt_path.read_text()


def test_keep_replies_ok_only_once_the_line_is_on_disk(tmp_path):
    w = TranscriptWriter(tmp_path, "s", datetime(2026, 1, 1))
    w.start()
    seen: list = []
    done = threading.Event()

    def reply(ok: bool, detail: str) -> None:
        seen.append((ok, (tmp_path / "harvest.txt").read_text()))
        done.set()

    w.keep("the kept poem", "(seed 3)", reply)
    assert done.wait(5)
    w.close()
    assert seen[0][0] is True and "the kept poem" in seen[0][1]


def test_full_disk_holds_lines_and_writes_them_with_a_resumed_line_when_space_returns(tmp_path):
    w = TranscriptWriter(tmp_path, "s", datetime(2026, 1, 1))
    os.symlink("/dev/full", w.jsonl_path)  # every write: ENOSPC
    w._jsonl.retry_s = 0.05
    w.start()
    for i in range(50):
        w.write(ev(float(i), "poem_end", n=i, text=f"poem {i}"))
    time.sleep(0.3)
    assert w._jsonl.failing
    os.unlink(w.jsonl_path)  # space is back
    w.write(ev(50.0))
    t0 = time.monotonic()
    while w._jsonl.failing and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    w.close()
    lines = w.jsonl_path.read_text().splitlines()
    parsed = [json.loads(x) for x in lines]  # no torn line
    assert [e["n"] for e in parsed if e["event"] == "poem_end"] == list(range(50))
    assert parsed[-1]["event"] == "resumed" and parsed[-1]["lost"] == 0
    assert "poem 49" in w.txt_path.read_text()  # the .txt never stopped


def test_a_torn_tail_is_repaired_on_open(tmp_path):
    w = TranscriptWriter(tmp_path, "s", datetime(2026, 1, 1))
    w.jsonl_path.write_text('{"t": 0, "event": "a"}\n{"t": 1, "ev')
    w.start()
    w.write(ev(2.0))
    w.close()
    assert [json.loads(x)["t"] for x in w.jsonl_path.read_text().splitlines()] == [0, 2.0]


def test_wall_is_the_real_time_of_the_event(tmp_path):
    clock = MonotonicClock()
    time.sleep(0.3)  # start-up (models loading) before the writer is made
    w = TranscriptWriter(tmp_path, "s", session_wall0(clock))
    w.start()
    t = clock.now()
    real = datetime.now().astimezone()
    w.write(ev(t))
    w.close()
    wall = datetime.fromisoformat(read_events(w.jsonl_path)[0]["wall"])
    assert abs((wall - real).total_seconds()) < 0.02


def test_a_running_engine_answers_keep_from_the_disk_and_stamps_true_wall_times(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT
    from osc_client import Client, free_port, msg, replies

    (tmp_path / "set.toml").write_text('[[scene]]\nmodel = "markov"\nlength = { words = 300 }\n'
                                       'pacing = { reveal = "words", rate = 25, hold = 0.2 }\n')
    sessions = tmp_path / "sessions"
    (sessions / "harvest.txt").mkdir(parents=True)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "run.py", "play", str(tmp_path / "set.toml"), "--headless", "--window",
                             "320x180", "--quiet", "--osc-port", str(port), "--duration", "60",
                             "--transcript-dir", str(sessions)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        c = Client(port)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 40:
            c.send(msg("/lectern/ping"))
            if ("/lectern/pong", []) in c.collect(0.3):
                break
        time.sleep(1.0)  # a poem on stage
        c.send(msg("/lectern/keep"))
        got = replies(c.collect(3.0, until=lambda o: any(a == "/lectern/reply" for a, _ in o)))
        assert got and got[0][:2] == ["/lectern/keep", "error"], got
        c.send(msg("/lectern/volume", 0.5))
        got = c.collect(3.0, until=lambda o: any(a == "/lectern/reply" for a, _ in o))
        answered = datetime.now().astimezone()
        assert got
    finally:
        proc.terminate()
        proc.wait(30)
    events = read_events(next(sessions.glob("*.jsonl")))
    vol = next(e for e in events if e["event"] == "command" and e["address"] == "/lectern/volume")
    late = (answered - datetime.fromisoformat(vol["wall"])).total_seconds()
    assert -0.02 <= late < 0.15, late  # the event happened just before its reply arrived
