"""The engine on a fake clock: exact event times, show control, steering."""

from __future__ import annotations

import pytest
from conftest import ROOT, script_loader

from performance.engine import Engine
from performance.protocol.actions import Sonify, Speak
from performance.protocol.commands import Command
from performance.show.config import load_setlist
from performance.simulate import simulate


def write(tmp_path, text: str, name: str = "set.toml"):
    p = tmp_path / name
    p.write_text(text)
    return load_setlist(p)


def of(events, kind):
    return [e for e in events if e["event"] == kind]


def test_elo2015_timeline_exact():
    setlist = load_setlist(ROOT / "setlists/elo2015.toml")
    events = simulate(setlist, 20000, dt=0.25, loader=script_loader)
    starts, ends, pauses = of(events, "poem_start"), of(events, "poem_end"), of(events, "pause")
    assert len(starts) == 100 and len(ends) == 100
    assert [e["n"] for e in ends] == list(range(1, 101))
    # a pause after poems 5, 10, ... 95 (none after the last), 20 s each, starting as the poem ends
    assert len(pauses) == 19
    end_t = {e["n"]: e["t"] for e in ends}
    start_t = {e["n"]: e["t"] for e in starts}
    for k, p in enumerate(pauses, start=1):
        assert p["seconds"] == 20
        assert p["t"] == end_t[5 * k]
        assert start_t[5 * k + 1] == pytest.approx(end_t[5 * k] + 20)
    # between other poems: the 4 s hold
    for n in (1, 2, 3, 4, 6, 99):
        assert start_t[n + 1] == pytest.approx(end_t[n] + 4)
    # words revealed at 6 per second: each poem's duration = words / 6
    for n in (1, 50):
        words = len(next(e for e in ends if e["n"] == n)["text"].split())
        assert end_t[n] - start_t[n] == pytest.approx(words / 6)
    assert of(events, "setlist_end")


def test_temperature_override_reaches_tokens_within_lookahead(tmp_path):
    s = write(tmp_path, """
[[scene]]
model = "x"
length = { words = 400 }
temperature = { program = "constant", value = 0.5 }
pacing = { reveal = "words", rate = 20, hold = 0 }
lookahead = 8
""")
    cmd = Command("/lectern/temperature", (1.7,), source="osc")
    events = simulate(s, 6, loader=script_loader, commands=[(3.0, cmd)])
    tokens = of(events, "token")
    after = [e for e in tokens if e["t"] >= 3.0]
    assert after, "tokens were revealed after the command"
    first_new = next(i for i, e in enumerate(after) if e["temperature"] == 1.7)
    assert first_new <= 10
    assert all(e["temperature"] == 1.7 for e in after[first_new:])
    assert all(e["temperature"] == 0.5 for e in tokens if e["t"] < 3.0)
    applied = of(events, "command")[0]
    assert applied["applied"] and applied["address"] == "/lectern/temperature"


SET_TWO = """
loop = false
[[scene]]
name = "one"
model = "x"
length = { lines = 3 }
pacing = { reveal = "words", rate = 10, hold = 1 }
{change}
[[scene]]
name = "two"
model = "x"
length = { lines = 2 }
poems = 1
pacing = { reveal = "words", rate = 10, hold = 1 }
"""


def test_go_changes_scene_at_the_next_poem_boundary(tmp_path):
    s = write(tmp_path, SET_TWO.replace("{change}", ""))
    events = simulate(s, 30, loader=script_loader, commands=[(0.5, Command("/lectern/go"))])
    scenes = of(events, "scene")
    assert [e["name"] for e in scenes] == ["one", "two"]
    first_end = of(events, "poem_end")[0]
    assert not first_end["partial"]
    assert scenes[1]["t"] == first_end["t"]  # the poem finished, then the change
    assert first_end["text"].count("\n") == 2


def test_go_at_line_boundary_when_the_scene_says_so(tmp_path):
    s = write(tmp_path, SET_TWO.replace("{change}", 'change_at = "line"'))
    events = simulate(s, 30, loader=script_loader, commands=[(0.2, Command("/lectern/go"))])
    first_end = of(events, "poem_end")[0]
    assert first_end["text"].count("\n") == 0  # cut after its first line
    assert of(events, "scene")[1]["t"] == first_end["t"]


def test_follow_and_wait_for_go(tmp_path):
    s = write(tmp_path, """
[[scene]]
name = "a"
model = "x"
poems = 1
length = { lines = 1 }
advance = "go"
pacing = { reveal = "instant", hold = 0.5 }
[[scene]]
name = "b"
model = "x"
poems = 1
length = { lines = 1 }
pacing = { reveal = "instant", hold = 0.5 }
""")
    events = simulate(s, 20, loader=script_loader, commands=[(10.0, Command("/lectern/go"))])
    scenes = of(events, "scene")
    assert [e["name"] for e in scenes] == ["a", "b"]
    assert of(events, "waiting_go")[0]["t"] == pytest.approx(0.5)
    assert scenes[1]["t"] == pytest.approx(10.0, abs=1 / 60)


def test_panic_then_go_resumes_with_the_standby_scene(tmp_path):
    s = write(tmp_path, SET_TWO.replace("{change}", ""))
    events = simulate(s, 20, loader=script_loader, commands=[(1.0, Command("/lectern/panic")),
                                                              (5.0, Command("/lectern/go"))])
    panic = of(events, "panic")[0]
    assert panic["t"] == pytest.approx(1.0, abs=1 / 60)
    assert not [e for e in of(events, "token") if 1.02 < e["t"] < 5.0]  # silence on stage until GO
    assert of(events, "resume")[0]["t"] == pytest.approx(5.0, abs=1 / 60)
    assert of(events, "scene")[-1]["name"] == "two"


def test_min_go_interval_refuses_a_double_go(tmp_path):
    s = write(tmp_path, SET_TWO.replace("{change}", ""))
    events = simulate(s, 3, loader=script_loader, commands=[(0.5, Command("/lectern/go")),
                                                             (0.6, Command("/lectern/go"))])
    cmds = of(events, "command")
    assert [c["applied"] for c in cmds] == [True, False]
    assert "GO refused" in cmds[1]["detail"]


def test_pause_freezes_and_resume_shifts_the_timeline(tmp_path):
    s = write(tmp_path, """
[[scene]]
model = "x"
length = { words = 40 }
pacing = { reveal = "words", rate = 10, hold = 0 }
""")
    events = simulate(s, 12, loader=script_loader, commands=[(1.0, Command("/lectern/pause")),
                                                              (6.0, Command("/lectern/resume"))])
    tokens = of(events, "token")
    assert not [e for e in tokens if 1.0 + 1e-6 < e["t"] < 6.0]
    end = of(events, "poem_end")[0]
    assert end["t"] == pytest.approx(40 / 10 + 5.0)


def test_reseed_starts_a_new_poem_now_with_the_given_seed(tmp_path):
    s = write(tmp_path, """
[[scene]]
model = "x"
length = { words = 100 }
seed = { program = "fixed", value = 3 }
pacing = { reveal = "words", rate = 10, hold = 0 }
""")
    events = simulate(s, 3, loader=script_loader, commands=[(1.0, Command("/lectern/seed", (99,)))])
    starts = of(events, "poem_start")
    assert [e["seed"] for e in starts[:2]] == [3, 99]
    assert starts[1]["t"] == pytest.approx(1.0, abs=1 / 60)
    assert of(events, "poem_end")[0]["partial"]


def test_same_session_seed_same_text_and_different_seed_differs(tmp_path):
    s = write(tmp_path, """
[[scene]]
model = "x"
poems = 5
length = { lines = 2 }
pacing = { reveal = "instant", hold = 0.1 }
""")
    a = [e["text"] for e in of(simulate(s, 10, loader=script_loader, session_seed=4), "poem_end")]
    b = [e["text"] for e in of(simulate(s, 10, loader=script_loader, session_seed=4), "poem_end")]
    c = [e["text"] for e in of(simulate(s, 10, loader=script_loader, session_seed=5), "poem_end")]
    assert a == b and a != c and len(a) == 5


def test_blocklist_masks_blocked_words(tmp_path):
    s = write(tmp_path, """
[[scene]]
model = "x"
poems = 20
length = { lines = 2 }
blocklist = { words = ["sea", "wind"] }
pacing = { reveal = "chars", rate = 200, hold = 0 }
""")
    events = simulate(s, 60, loader=script_loader)
    texts = " ".join(e["text"] for e in of(events, "poem_end"))
    assert "sea" not in texts and "wind" not in texts
    assert "•••" in texts and "grey" in texts


def test_keep_and_voice_and_sonify_actions(tmp_path):
    s = write(tmp_path, """
[[scene]]
model = "x"
length = { lines = 2 }
pacing = { reveal = "words", rate = 50, hold = 5 }
""")
    engine = Engine(s, session_seed=1)
    engine.start(0.0)
    assert engine.standby is None
    out = engine.step(0.1, [Command("/lectern/keep")])
    assert of(out.events, "command")[0]["applied"] is False  # nothing shown yet
    out = engine.step(0.2, [Command("/lectern/volume", (0.25,))])
    assert engine.volume == 0.25 and out.sound


def test_speak_and_sonify_follow_the_scene(tmp_path):
    from performance.show.config import Scene  # noqa: F401  (settings objects are duck-typed)

    s = write(tmp_path, """
[[scene]]
model = "x"
poems = 1
length = { lines = 2 }
pacing = { reveal = "words", rate = 50, hold = 1 }
""")
    from dataclasses import dataclass, replace

    @dataclass(frozen=True)
    class V:
        mode: str = "line"

    @dataclass(frozen=True)
    class S:
        enabled: bool = True

    scene = replace(s.entries[0].scene, voice=V(), sonify=S())
    s = replace(s, entries=(replace(s.entries[0], scene=scene),))
    spoken, sounded = [], []

    def grab(now, out):
        spoken.extend(a for a in out.sound if isinstance(a, Speak))
        sounded.extend(a for a in out.sound if isinstance(a, Sonify))

    events = simulate(s, 5, loader=script_loader, on_outbox=grab)
    text = of(events, "poem_end")[0]["text"]
    assert [sp.text for sp in spoken] == text.split("\n")
    assert [sp.line for sp in spoken] == [0, 1]
    assert len(sounded) == len([e for e in of(events, "token") if e["text"].strip()])


def test_poems_written_ahead_and_batched_depend_on_their_seed_only(tmp_path):
    """A flick scene writes several poems ahead, stepped together in one batch by the worker;
    each poem's text must be what its seed gives when written alone."""
    from performance.textgen import load_model

    gen = load_model("default")
    texts = {}
    for ahead in (0, 3):
        s = write(tmp_path, f"""
[[scene]]
layout = "flick"
model = "default"
poems = 5
length = {{ words = 25 }}
seed = {{ program = "new" }}
temperature = {{ program = "constant", value = 0.8 }}
pacing = {{ reveal = "instant", hold = 0.3 }}
ahead = {ahead}
""", name=f"flick{ahead}.toml")
        events = simulate(s, 20, loader=lambda name: gen, session_seed=11)
        texts[ahead] = [(e["seed"], e["text"]) for e in of(events, "poem_end") if not e["partial"]]
    assert len(texts[0]) == 5 and texts[0] == texts[3]
    assert len({seed for seed, _ in texts[0]}) == 5
