"""Cue timing as in QLab (pre-wait, post-wait, continue modes) on the fake clock: exact times."""

from __future__ import annotations

import pytest
from conftest import ROOT, script_loader

from performance.engine import Engine
from performance.protocol.commands import Command
from performance.show.config import load_setlist
from performance.simulate import simulate
from performance.worker.core import WorkerCore

GO = Command("/lectern/go")


def write(tmp_path, text: str, name: str = "set.toml"):
    p = tmp_path / name
    p.write_text(text)
    return load_setlist(p)


def of(events, kind):
    return [e for e in events if e["event"] == kind]


def waits(events):
    """(event, kind, scene, t, how/by) of every cue wait event."""
    return [(e["event"], e["kind"], e["scene"], e["t"], e.get("how", e.get("by")))
            for e in events if e["event"] in ("cue_wait", "cue_wait_end")]


def scene_times(events):
    return [(e["name"], e["t"]) for e in of(events, "scene")]


def one_poem(name: str, extra: str = "") -> str:
    return f"""
[[scene]]
name = "{name}"
model = "x"
poems = 1
length = {{ words = 10 }}
pacing = {{ reveal = "words", rate = 10, hold = 0.5 }}
{extra}
"""


def test_elo2015_timed_reading_written_either_way_has_one_timeline(tmp_path):
    paused = simulate(load_setlist(ROOT / "setlists/elo2015.toml"), 20000, dt=0.25, loader=script_loader)
    cue = "\n".join(f"""
[[scene]]
file = "{ROOT / 'scenes/elo2015.toml'}"
name = "elo {k + 1}"
poems = 5
pacing = {{ pause_every = 0 }}
continue = "auto-follow"
post_wait = {20 if k < 19 else 0}
""" for k in range(20))
    cued = simulate(write(tmp_path, cue), 20000, dt=0.25, loader=script_loader)
    for kind in ("poem_start", "poem_end"):
        a, b = of(paused, kind), of(cued, kind)
        assert len(a) == len(b) == 100
        assert [(e["n"], e["t"]) for e in a] == [(e["n"], e["t"]) for e in b]
    assert [e["text"] for e in of(paused, "poem_end")] == [e["text"] for e in of(cued, "poem_end")]
    # each timed pause is a post-wait of the same 20 s, from the same moment
    pauses = [(e["t"], e["seconds"]) for e in of(paused, "pause")]
    posts = [(e["t"], e["seconds"]) for e in of(cued, "cue_wait")]
    assert len(pauses) == 19 and posts == pauses
    assert [e["how"] for e in of(cued, "cue_wait_end")] == ["elapsed"] * 19
    assert of(paused, "setlist_end")[0]["t"] == of(cued, "setlist_end")[0]["t"]


def test_advance_follow_is_auto_follow_and_unchanged(tmp_path):
    old = write(tmp_path, one_poem("a") + one_poem("b"), "old.toml")
    new = write(tmp_path, one_poem("a", 'continue = "auto-follow"') + one_poem("b"), "new.toml")
    assert old.entries[0].cont == new.entries[0].cont == "auto-follow"
    ev_old, ev_new = simulate(old, 10, dt=0.25, loader=script_loader), simulate(new, 10, dt=0.25, loader=script_loader)
    def strip(events):
        return [{k: v for k, v in e.items() if k not in ("file", "setlist")} for e in events]

    assert strip(ev_old) == strip(ev_new)
    assert scene_times(ev_old) == [("a", 0.0), ("b", 1.5)]  # 1 s of words, the 0.5 s hold
    assert not waits(ev_old)


def test_pre_wait_after_go_on_an_empty_stage(tmp_path):
    s = write(tmp_path, one_poem("a", 'continue = "no"') + one_poem("b", "pre_wait = 3"))
    events = simulate(s, 20, dt=0.25, loader=script_loader, commands=[(10.0, GO)])
    assert of(events, "waiting_go")[0]["t"] == 1.5
    assert waits(events) == [("cue_wait", "pre_wait", 2, 10.0, "go"), ("cue_wait_end", "pre_wait", 2, 13.0, "elapsed")]
    assert scene_times(events) == [("a", 0.0), ("b", 13.0)]
    assert of(events, "poem_start")[1]["t"] == 13.0


def test_go_during_a_pre_wait_starts_the_cue_at_once(tmp_path):
    s = write(tmp_path, one_poem("a", 'continue = "no"') + one_poem("b", "pre_wait = 10"))
    events = simulate(s, 30, dt=0.25, loader=script_loader, commands=[(5.0, GO), (8.0, GO)])
    assert waits(events) == [("cue_wait", "pre_wait", 2, 5.0, "go"), ("cue_wait_end", "pre_wait", 2, 8.0, "go")]
    assert scene_times(events) == [("a", 0.0), ("b", 8.0)]


def test_pre_wait_while_a_scene_plays_ends_it_at_its_boundary_then_waits(tmp_path):
    s = write(tmp_path, """
[[scene]]
name = "a"
model = "x"
length = { words = 10 }
pacing = { reveal = "words", rate = 10, hold = 1 }
[[scene]]
name = "b"
model = "x"
poems = 1
length = { words = 10 }
pacing = { reveal = "words", rate = 10, hold = 1 }
pre_wait = 20
""")
    events = simulate(s, 40, dt=0.25, loader=script_loader, commands=[(0.5, GO)])
    first = of(events, "poem_end")[0]
    assert first["t"] == 1.0 and not first["partial"]  # the poem on stage finished: the boundary
    assert waits(events) == [("cue_wait", "pre_wait", 2, 0.5, "go"), ("cue_wait_end", "pre_wait", 2, 20.5, "elapsed")]
    assert scene_times(events) == [("a", 0.0), ("b", 20.5)]
    assert not [e for e in of(events, "token") if 1.0 < e["t"] < 20.5]  # the stage waits, empty


def test_auto_follow_with_post_wait_then_the_next_pre_wait(tmp_path):
    s = write(tmp_path, one_poem("a", 'continue = "auto-follow"\npost_wait = 5') + one_poem("b", "pre_wait = 2"))
    events = simulate(s, 20, dt=0.25, loader=script_loader)
    assert of(events, "poem_end")[0]["t"] == 1.0  # the post-wait replaces the last hold
    assert waits(events) == [
        ("cue_wait", "post_wait", 2, 1.0, "auto-follow"), ("cue_wait_end", "post_wait", 2, 6.0, "elapsed"),
        ("cue_wait", "pre_wait", 2, 6.0, "auto-follow"), ("cue_wait_end", "pre_wait", 2, 8.0, "elapsed")]
    assert scene_times(events) == [("a", 0.0), ("b", 8.0)]


def test_auto_continue_hands_the_stage_over_at_the_boundary_after_the_next_pre_wait(tmp_path):
    s = write(tmp_path, """
[[scene]]
name = "a"
model = "x"
length = { words = 10 }
pacing = { reveal = "words", rate = 10, hold = 1.5 }
continue = "auto-continue"
post_wait = 4
[[scene]]
name = "b"
model = "x"
poems = 1
length = { words = 10 }
pacing = { reveal = "words", rate = 10, hold = 1 }
pre_wait = 6
""")
    events = simulate(s, 40, dt=0.25, loader=script_loader)
    # post-wait counted from a's start (as in QLab), then b's pre-wait; a keeps playing meanwhile
    assert waits(events) == [
        ("cue_wait", "post_wait", 2, 0.0, "auto-continue"), ("cue_wait_end", "post_wait", 2, 4.0, "elapsed"),
        ("cue_wait", "pre_wait", 2, 4.0, "auto-continue"), ("cue_wait_end", "pre_wait", 2, 10.0, "elapsed")]
    # a's poems: 0-1, 2.5-3.5, 5-6, 7.5-8.5, 10-11: the one playing at 10 ends, then b at once
    ends = [(e["t"], e["partial"]) for e in of(events, "poem_end")]
    assert ends[:5] == [(1.0, False), (3.5, False), (6.0, False), (8.5, False), (11.0, False)]
    assert scene_times(events) == [("a", 0.0), ("b", 11.0)]


def test_auto_continue_scene_that_ends_first_leaves_the_stage_waiting(tmp_path):
    s = write(tmp_path, one_poem("a", 'continue = "auto-continue"') + one_poem("b", "pre_wait = 5"))
    events = simulate(s, 20, dt=0.25, loader=script_loader)
    assert waits(events) == [("cue_wait", "pre_wait", 2, 0.0, "auto-continue"),
                             ("cue_wait_end", "pre_wait", 2, 5.0, "elapsed")]
    assert scene_times(events) == [("a", 0.0), ("b", 5.0)]


def test_panic_cancels_every_pending_wait_and_go_resumes(tmp_path):
    s = write(tmp_path, one_poem("a", 'continue = "auto-follow"\npost_wait = 10') + one_poem("b"))
    events = simulate(s, 30, dt=0.25, loader=script_loader,
                      commands=[(4.0, Command("/lectern/panic")), (20.0, GO)])
    assert waits(events) == [("cue_wait", "post_wait", 2, 1.0, "auto-follow"),
                             ("cue_wait_end", "post_wait", 2, 4.0, "panic")]
    assert scene_times(events) == [("a", 0.0), ("b", 20.0)]  # nothing at 11: the wait was cancelled


@pytest.mark.parametrize("cmd", [Command("/lectern/scene", (1,)), Command("/lectern/back")])
def test_back_and_scene_cancel_a_pending_wait(tmp_path, cmd):
    s = write(tmp_path, one_poem("a", 'continue = "auto-follow"\npost_wait = 10') + one_poem("b"))
    events = simulate(s, 8, dt=0.25, loader=script_loader, commands=[(4.0, cmd)])
    assert waits(events)[:2] == [("cue_wait", "post_wait", 2, 1.0, "auto-follow"),
                                 ("cue_wait_end", "post_wait", 2, 4.0, cmd.name)]
    assert scene_times(events)[:2] == [("a", 0.0), ("a", 4.0)]  # scene 1 again, at once


def test_first_scene_pre_wait_and_pause_holds_the_countdown(tmp_path):
    s = write(tmp_path, one_poem("a", "pre_wait = 4"))
    events = simulate(s, 20, dt=0.25, loader=script_loader,
                      commands=[(1.0, Command("/lectern/pause")), (3.0, Command("/lectern/resume"))])
    assert waits(events) == [("cue_wait", "pre_wait", 1, 0.0, "start"), ("cue_wait_end", "pre_wait", 1, 6.0, "elapsed")]
    assert scene_times(events) == [("a", 6.0)]


def drive(setlist, until: float, probes: dict[float, None], dt: float = 0.25, commands=()):
    """Step an Engine as simulate does and keep its report at the probe times."""
    out: list = []
    core = WorkerCore(out.append, script_loader)
    eng = Engine(setlist, session_seed=1)
    pending = sorted(commands, key=lambda tc: tc[0])
    seen: dict[float, dict] = {}
    for msg in eng.start(0.0).worker:
        core.handle(msg)
    for i in range(int(until / dt) + 1):
        now = i * dt
        inbox = [c for t, c in pending if t == now]
        for _ in range(100):
            core.pump()
            inbox += out
            out.clear()
            for msg in eng.step(now, inbox).worker:
                core.handle(msg)
            inbox = []
            core.pump()
            if not out:
                break
        if now in probes:
            seen[now] = eng.snapshot()
    return seen


def test_the_state_shows_running_next_and_the_countdown(tmp_path):
    from performance.controllers.console import status_line
    from performance.protocol.snapshot import Snapshot
    from performance.stage.monitor import monitor_info

    s = write(tmp_path, one_poem("a", 'continue = "auto-follow"\npost_wait = 5') + one_poem("b", "pre_wait = 2"))
    seen = drive(s, 10, {0.5: None, 2.0: None, 7.0: None, 9.0: None})
    assert seen[0.5]["running"] == (1, "a") and seen[0.5]["next_auto"] == (2, "b")
    assert seen[0.5]["countdown"] is None and seen[0.5]["continue_mode"] == "auto-follow"
    during_post = seen[2.0]
    assert during_post["state"] == "cue_wait" and during_post["running"] == (0, "")
    assert during_post["cue_wait"] == "post_wait" and during_post["countdown"] == 6.0  # 4 s post + 2 s pre
    assert seen[7.0]["cue_wait"] == "pre_wait" and seen[7.0]["countdown"] == 1.0
    assert seen[9.0]["running"] == (2, "b") and seen[9.0]["countdown"] is None
    snap = Snapshot(**{k: v for k, v in during_post.items() if k in Snapshot.keys()})
    assert "next 2 b in 6 s (post-wait)" in status_line(snap)
    info = monitor_info(snap, __import__("datetime").datetime(2025, 1, 1))
    assert info.cue == "next 2 b in 0:06 (post-wait)"
