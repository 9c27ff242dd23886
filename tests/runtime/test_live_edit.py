"""A running show (run.py play, headless, real markov model) edited on disk: the watcher thread
notices, the next poem is written by the new version, a broken edit and `/lectern/reload` over
OSC change nothing but the one line, and the transcript says each with the file's sha256."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import time

from conftest import ROOT
from osc_client import Client, free_port, msg, replies

SCENE = """model = "markov"
length = {{ words = {n} }}
seed = {{ program = "new" }}
pacing = {{ reveal = "words", rate = {rate}, hold = 0.2 }}
"""
WAIT_S = 60  # the most one step waits on a busy machine; each returns as soon as the transcript says so


def events(folder) -> list[dict]:
    files = list(folder.glob("generated-*.jsonl"))
    if not files:
        return []
    out = []
    for line in files[0].read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line being written
    return out


def wait_for(folder, pred, what: str) -> list[dict]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < WAIT_S:
        ev = events(folder)
        if pred(ev):
            return ev
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {WAIT_S} s: {[e['event'] for e in events(folder)][-20:]}")


def of(ev, kind):
    return [e for e in ev if e["event"] == kind]


def words(text: str) -> int:
    """Words as a length rule counts them (performance/textgen/lengths.py): o'er-sways is two."""
    return len(re.findall(r"[^\W\d_]+(?:['’][^\W\d_]+)*", text))


def test_a_running_show_takes_an_edit_at_the_next_poem_and_refuses_a_broken_one(tmp_path):
    scene = tmp_path / "a.toml"
    scene.write_text(SCENE.format(n=12, rate=25))
    (tmp_path / "set.toml").write_text('[[scene]]\nfile = "a.toml"\nname = "a"\n')
    sessions = tmp_path / "sessions"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "run.py", "play", str(tmp_path / "set.toml"), "--headless", "--window",
                             "320x180", "--quiet", "--osc-port", str(port), "--duration", "120",
                             "--transcript-dir", str(sessions)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        ev = wait_for(sessions, lambda ev: len(of(ev, "poem_end")) >= 1, "first poem")
        assert words(of(ev, "poem_end")[0]["text"]) == 12
        scene.write_text(SCENE.format(n=3, rate=25))
        good_sha = hashlib.sha256(scene.read_bytes()).hexdigest()
        ev = wait_for(sessions, lambda ev: of(ev, "reload_applied") and len(
            [e for e in of(ev, "poem_end") if e["t"] > of(ev, "reload_applied")[0]["t"]]) >= 2, "reloaded poems")
        (rel,), (applied,) = of(ev, "reload"), of(ev, "reload_applied")
        assert rel["ok"] and rel["sha256"] == good_sha and rel["file"] == str(scene.resolve())
        assert applied["sha256"] == good_sha and applied["at"] in ("poem", "now")
        ends = of(ev, "poem_end")
        before = [e for e in ends if e["t"] <= applied["t"]]
        after = [e for e in ends if e["t"] > applied["t"]]
        assert all(words(e["text"]) == 12 for e in before if not e["partial"])
        assert [words(e["text"]) for e in after[:2]] == [3, 3], [e["text"] for e in after[:2]]
        # never mid-line: the new version took the stage at a poem's end or between poems
        starts = of(ev, "poem_start")
        assert not any(s["t"] < applied["t"] < e["t"] for s, e in zip(starts, ends, strict=False)), [(e["event"], e["t"], e.get("n")) for e in ev if e["event"] in ("poem_start", "poem_end", "reload", "reload_applied", "scene")]

        scene.write_text(SCENE.format(n=3, rate=-2))  # broken: the show goes on as it was
        bad_sha = hashlib.sha256(scene.read_bytes()).hexdigest()
        ev = wait_for(sessions, lambda ev: len(of(ev, "reload")) >= 2, "refused edit")
        bad = of(ev, "reload")[1]
        assert not bad["ok"] and bad["sha256"] == bad_sha
        assert bad["error"] == f"{scene}: key 'pacing.rate' = -2: must be a number from 0.1 to 100000.0 (finite)"
        c = Client(port)
        c.send(msg("/lectern/reload"))
        got = replies(c.collect(WAIT_S, until=lambda out: any(m[0] == "/lectern/reply" for m in out)))
        assert got and got[0][:2] == ["/lectern/reload", "error"] and got[0][2] == bad["error"]
        n_applied = len(of(events(sessions), "poem_end"))
        ev = wait_for(sessions, lambda ev: len(of(ev, "poem_end")) >= n_applied + 2, "poems after the refused edit")
        assert len(of(ev, "reload_applied")) == 1
        assert all(words(e["text"]) == 3 for e in of(ev, "poem_end")[-2:])
        osc = [e for e in of(ev, "reload") if e["source"] == "osc"]
        assert osc and osc[0]["file"] == str(tmp_path / "set.toml") and not osc[0]["ok"]

        # a scene added to the setlist: once it is in effect, OSC numbers it (the controllers see the
        # engine's setlist, so scene 2 is not clamped to the 1 scene the show started with)
        scene.write_text(SCENE.format(n=3, rate=25))
        wait_for(sessions, lambda ev: len(of(ev, "reload_applied")) >= 2, "the mended scene")
        setlist = tmp_path / "set.toml"
        setlist.write_text(setlist.read_text() + '\n[[scene]]\nname = "b"\nmodel = "markov"\n')
        key = str(setlist.resolve())
        wait_for(sessions, lambda ev: any(e["file"] == key for e in of(ev, "reload_applied")), "the longer setlist")
        c.send(msg("/lectern/scene", 2))
        got = replies(c.collect(WAIT_S, until=lambda out: any(m[0] == "/lectern/reply" for m in out)))
        assert got and got[0] == ["/lectern/scene", "ok", "scene 2 at the next poem"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(2)
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
