"""Edits while the show runs, on the fake clock: a new version of a scene or setlist takes effect
exactly at the next poem or cue boundary (never mid-line), a bad edit changes nothing but its one
line, and a scene removed while it plays plays on until the next GO."""

from __future__ import annotations

import hashlib
import re

from conftest import script_loader

from performance.engine import Engine
from performance.protocol.actions import Reload
from performance.protocol.commands import Command
from performance.show.config import load_setlist
from performance.show.reload import read_again
from performance.simulate import simulate
from performance.worker.core import WorkerCore

GO = Command("/lectern/go")


def scene_text(words: int, prompt: str = "", extra: str = "") -> str:
    return f"""model = "markov"
prompt = "{prompt}"
length = {{ words = {words} }}
pacing = {{ reveal = "words", rate = 10, hold = 0.5 }}
{extra}
"""


def make(tmp_path, scenes: dict[str, str], order: list[str], extra: str = "") -> tuple:
    for name, text in scenes.items():
        (tmp_path / f"{name}.toml").write_text(text)
    sl = tmp_path / "set.toml"
    sl.write_text(setlist_text(order, extra))
    return sl, load_setlist(sl)


def setlist_text(order: list[str], extra: str = "") -> str:
    return "\n".join(f'[[scene]]\nfile = "{n}.toml"\nname = "{n}"\n{extra}' for n in order)


def of(events, kind):
    return [e for e in events if e["event"] == kind]


def words(text: str) -> int:
    return len(re.findall(r"[^\W\d_]+", text))


def test_an_edit_mid_poem_takes_effect_exactly_at_that_poems_end(tmp_path):
    path, sl = make(tmp_path, {"a": scene_text(10, extra="poems = 4")}, ["a"])
    (tmp_path / "a.toml").write_text(scene_text(4, extra="poems = 4"))  # the edit: shorter poems
    msg = read_again(path, changed=tmp_path / "a.toml")
    assert msg.error == "" and msg.setlist.entries[0].scene.length.lo == 4
    ev = simulate(sl, 10, dt=0.25, loader=script_loader, commands=[(0.25, msg)])
    ends, starts = of(ev, "poem_end"), of(ev, "poem_start")
    rel, applied = of(ev, "reload"), of(ev, "reload_applied")
    assert [(e["t"], e["ok"], e["takes_effect"]) for e in rel] == [(0.25, True, "poem")]
    assert rel[0]["file"] == str(tmp_path / "a.toml")
    assert rel[0]["sha256"] == hashlib.sha256((tmp_path / "a.toml").read_bytes()).hexdigest()
    # poem 1 (10 words at 10 words/s from t = 0) is finished as it was; the new version starts after it
    assert ends[0]["t"] == 1.0 and words(ends[0]["text"]) == 10
    assert [(e["t"], e["at"]) for e in applied] == [(1.0, "poem")]
    assert [words(e["text"]) for e in ends[1:]] == [4, 4, 4]
    # no reload lands inside a poem: every one is at a poem's end
    for s, e in zip(starts, ends, strict=True):
        assert not s["t"] < applied[0]["t"] < e["t"]
    # the stage takes the new look with the first poem of the new version
    restyle = [e for e in of(ev, "scene") if e.get("reloaded")]
    assert [e["t"] for e in restyle] == [starts[1]["t"]] == [1.5]


def test_an_edit_during_the_hold_rewrites_the_next_poem_at_once(tmp_path):
    path, sl = make(tmp_path, {"a": scene_text(10, extra="poems = 3")}, ["a"])
    (tmp_path / "a.toml").write_text(scene_text(3, extra="poems = 3"))
    msg = read_again(path, changed=tmp_path / "a.toml")
    ev = simulate(sl, 10, dt=0.25, loader=script_loader, commands=[(1.25, msg)])  # poem 1 ended at 1.0
    assert [(e["t"], e["takes_effect"]) for e in of(ev, "reload")] == [(1.25, "now")]
    assert [(e["t"], e["at"]) for e in of(ev, "reload_applied")] == [(1.25, "now")]
    assert [words(e["text"]) for e in of(ev, "poem_end")] == [10, 3, 3]
    assert of(ev, "poem_start")[1]["t"] == 1.5  # the hold is kept: the next poem starts on time


def test_a_bad_edit_changes_nothing_but_its_one_line(tmp_path):
    path, sl = make(tmp_path, {"a": scene_text(10, extra="poems = 3")}, ["a"])
    (tmp_path / "a.toml").write_text(scene_text(10, extra="poems = 3").replace("rate = 10", "rate = -2"))
    bad = read_again(path, changed=tmp_path / "a.toml")
    assert bad.setlist is None
    assert bad.error == f"{tmp_path / 'a.toml'}: key 'pacing.rate' = -2: must be a number from 0.1 to 100000.0 (finite)"
    (tmp_path / "a.toml").write_text(scene_text(10, extra="poems = 3"))
    (tmp_path / "b.toml").write_text("name = [")  # not TOML at all
    (tmp_path / "set.toml").write_text(setlist_text(["a", "b"]))
    broken = read_again(path)
    assert broken.setlist is None and broken.error.startswith(f"{tmp_path / 'b.toml'}: not valid TOML")
    plain = simulate(sl, 6, dt=0.25, loader=script_loader)
    seen = []
    edited = simulate(sl, 6, dt=0.25, loader=script_loader, commands=[(0.25, bad), (2.0, broken)],
                      on_outbox=lambda now, out: seen.append(now))
    assert [e for e in edited if e["event"] != "reload"] == plain
    assert [(e["t"], e["ok"], e["error"]) for e in of(edited, "reload")] == [
        (0.25, False, bad.error), (2.0, False, broken.error)]
    eng = Engine(sl, session_seed=1)
    eng.start(0.0)
    eng.step(0.25, [bad])
    snap = eng.snapshot()
    assert snap["reload_error"] == bad.error and eng.setlist is sl


def drive(setlist, until: float, at: dict[float, list], probes=(), dt: float = 0.25):
    """Step an Engine as simulate does, with messages at given times; (events, reports at probes)."""
    out: list = []
    core = WorkerCore(out.append, script_loader)
    eng = Engine(setlist, session_seed=1)
    events, seen = [], {}

    def route(o):
        events.extend(o.events)
        o.answer()
        for m in o.worker:
            core.handle(m)
        core.pump()

    route(eng.start(0.0))
    for i in range(int(until / dt) + 1):
        now = i * dt
        inbox = list(at.get(now, []))
        for _ in range(100):
            inbox += out
            out.clear()
            route(eng.step(now, inbox))
            inbox = []
            if not out:
                break
        if now in probes:
            seen[now] = eng.snapshot()
    return events, seen, eng


def test_a_removed_scene_plays_on_until_the_next_go(tmp_path):
    scenes = {n: scene_text(10, extra='poems = 3\ncontinue = "no"') for n in ("a", "b", "c")}
    path, sl = make(tmp_path, scenes, ["a", "b", "c"])
    (tmp_path / "set.toml").write_text(setlist_text(["b", "c"]))  # a, on stage, is removed
    msg = read_again(path)
    assert [e.scene.name for e in msg.setlist.entries] == ["b", "c"]
    replies = []
    msg = Reload(msg.setlist, msg.error, msg.file, msg.sha256, msg.files, "osc", lambda ok, d: replies.append((ok, d)))
    events, seen, eng = drive(sl, 8, {0.5: [msg], 2.75: [GO]}, probes=(1.0, 2.5, 3.5, 5.0))
    assert replies and replies[0][0] is True
    applied = of(events, "reload_applied")
    assert [(e["t"], e["removed"], e["name"]) for e in applied] == [(1.0, True, "a")]
    # a plays on: its second poem starts after the hold, still scene a, in its own version
    assert [(e["t"], e["scene"]) for e in of(events, "poem_start")][:3] == [(0.0, 1), (1.5, 1), (3.0, 1)]
    assert seen[1.0]["scene"] == (1, "a") and seen[1.0]["standby"] == (2, "b")
    assert "removed" in seen[1.0]["reload"]
    assert seen[2.5]["state"] == "playing" and seen[2.5]["scene"] == (1, "a")
    # GO at 2.75 (in the hold after poem 2): b takes the stage when the hold ends, and a leaves the
    # setlist (b is scene 1 now: its poem at 3.0 is scene 1's)
    assert [(e["name"], e["t"]) for e in of(events, "scene")] == [("a", 0.0), ("b", 3.0)]
    assert seen[3.5]["scene"] == (1, "b") and seen[3.5]["standby"] == (2, "c")
    assert [e.scene.name for e in eng.setlist.entries] == ["b", "c"]


def test_an_edit_during_a_pre_wait_takes_effect_when_the_cue_starts(tmp_path):
    scenes = {"a": scene_text(10, extra='poems = 1\ncontinue = "auto-follow"'), "b": scene_text(10, extra="pre_wait = 2")}
    path, sl = make(tmp_path, scenes, ["a", "b"])
    (tmp_path / "b.toml").write_text(scene_text(5, "new words", extra="pre_wait = 2"))
    msg = read_again(path, changed=tmp_path / "b.toml")
    events, seen, _ = drive(sl, 6, {2.0: [msg]})  # a ends after its hold at 1.5; b's pre-wait runs to 3.5
    assert [(e["t"], e["takes_effect"]) for e in of(events, "reload")] == [(2.0, "cue")]
    assert [(e["t"], e["at"], e["name"]) for e in of(events, "reload_applied")] == [(3.5, "cue", "b")]
    assert [(e["name"], e["t"]) for e in of(events, "scene")] == [("a", 0.0), ("b", 3.5)]
    ends = of(events, "poem_end")
    assert words(ends[0]["text"]) == 10 and words(ends[1]["text"]) == 5


def test_waiting_for_go_a_reload_is_taken_at_once_and_go_plays_the_new_version(tmp_path):
    scenes = {"a": scene_text(10, extra='poems = 1\ncontinue = "no"'), "b": scene_text(10, extra="poems = 1")}
    path, sl = make(tmp_path, scenes, ["a", "b"])
    (tmp_path / "b.toml").write_text(scene_text(2, extra="poems = 1"))
    (tmp_path / "set.toml").write_text(setlist_text(["a", "b"]) + '\n[[scene]]\nname = "c"\nmodel = "markov"\n')
    msg = read_again(path, changed=tmp_path / "b.toml")
    events, seen, eng = drive(sl, 5, {2.0: [msg], 3.0: [GO]}, probes=(2.5,))
    assert [(e["t"], e["at"]) for e in of(events, "reload_applied")] == [(2.0, "now")]
    assert seen[2.5]["state"] == "waiting_go" and seen[2.5]["standby"] == (2, "b")
    assert [words(e["text"]) for e in of(events, "poem_end")][:2] == [10, 2]
    assert len(eng.setlist.entries) == 3


def test_the_reload_line_reads_back_from_the_transcript_with_its_hash(tmp_path):
    from datetime import datetime

    from performance.record.transcript import TranscriptWriter, read_events, reloads

    path, sl = make(tmp_path, {"a": scene_text(10, extra="poems = 2")}, ["a"])
    (tmp_path / "a.toml").write_text(scene_text(3, extra="poems = 2"))
    good = read_again(path, changed=tmp_path / "a.toml")
    (tmp_path / "a.toml").write_text("poems = 0\n" + scene_text(3))
    bad = read_again(path, changed=tmp_path / "a.toml")
    ev = simulate(sl, 5, dt=0.25, loader=script_loader, commands=[(0.5, good), (1.25, bad)])
    w = TranscriptWriter(tmp_path / "sessions", "set", datetime(2026, 1, 1))
    w.start()
    for e in ev:
        w.write(e)
    w.close()
    back = reloads(read_events(w.jsonl_path))
    digest = hashlib.sha256
    assert [(r["t"], r["ok"], r["sha256"]) for r in back] == [
        (0.5, True, good.sha256), (1.25, False, digest((tmp_path / "a.toml").read_bytes()).hexdigest())]
    assert back[0]["applied_at"] == 1.0 and back[1]["applied_at"] is None
    assert back[1]["error"] == bad.error and "key 'poems' = 0" in bad.error
    assert dict(back[0]["files"])[str(path.resolve())] == digest(path.read_bytes()).hexdigest()


def test_the_refusal_line_reaches_the_operator_view_the_monitor_the_remote_and_osc(tmp_path):
    """From the engine's report through the one Snapshot to each view (none reads the Engine)."""
    from datetime import datetime

    from rich.console import Console

    from performance.operator import OperatorView
    from performance.runtime.publisher import compose
    from performance.stage.monitor import monitor_info

    path, sl = make(tmp_path, {"a": scene_text(10)}, ["a"])
    (tmp_path / "a.toml").write_text(scene_text(0))
    bad = read_again(path, changed=tmp_path / "a.toml")
    eng = Engine(sl, session_seed=1)
    eng.start(0.0)
    eng.step(0.5, [bad])
    snap = compose(eng.snapshot())
    line = f"{tmp_path / 'a.toml'}: key 'length.words' = 0: "
    assert snap.reload_error.startswith(line)
    assert snap.to_dict()["reload_error"] == snap.reload_error  # the remote's state message
    from performance.controllers.osc.feedback import state_messages

    assert state_messages(snap.to_dict())["state/reload_error"] == [snap.reload_error]  # OSC subscribers
    assert monitor_info(snap, datetime(2026, 1, 1)).warnings[0].startswith("edit refused: a.toml: key 'length.words' = 0")
    view = OperatorView()
    view.update(snap, 60.0)
    console = Console(width=400, record=True)
    console.print(view.table())
    text = console.export_text()
    assert "edit refused" in text and line.strip() in text


def test_paused_in_a_hold_a_reload_is_taken_at_once_and_the_hold_resumes_as_it_was(tmp_path):
    path, sl = make(tmp_path, {"a": scene_text(10, extra="poems = 3")}, ["a"])
    (tmp_path / "a.toml").write_text(scene_text(2, extra="poems = 3"))
    msg = read_again(path, changed=tmp_path / "a.toml")
    pause, resume = Command("/lectern/pause"), Command("/lectern/resume")
    # poem 1 ends at 1.0, its hold would end at 1.5; paused at 1.25 for 5 s, the edit arrives at 4.0
    events, _, _ = drive(sl, 12, {1.25: [pause], 4.0: [msg], 6.25: [resume]})
    assert [(e["t"], e["at"]) for e in of(events, "reload_applied")] == [(4.0, "now")]
    assert of(events, "poem_start")[1]["t"] == 6.5  # the hold's last 0.25 s after the resume
    assert [words(e["text"]) for e in of(events, "poem_end")] == [10, 2, 2]


def test_with_columns_the_edit_waits_for_a_moment_no_column_is_mid_poem(tmp_path):
    cols = 'layout = "columns"\nmodels = ["markov", "markov"]\nlength = { words = [4, 14] }\n'
    text = scene_text(1).replace('model = "markov"\n', "").replace("length = { words = 1 }\n", cols)
    path, sl = make(tmp_path, {"a": text + "poems = 6"}, ["a"])
    (tmp_path / "a.toml").write_text(text.replace("[4, 14]", "3") + "poems = 6")
    msg = read_again(path, changed=tmp_path / "a.toml")
    ev = simulate(sl, 30, dt=0.25, loader=script_loader, commands=[(0.25, msg)])
    (applied,) = of(ev, "reload_applied")
    spans = {}
    for e in ev:
        if e["event"] == "poem_start":
            spans[e["n"]] = [e["column"], e["t"], None]
        elif e["event"] == "poem_end" and e["n"] in spans:
            spans[e["n"]][2] = e["t"]
    assert len({c for c, _, _ in spans.values()}) == 2
    assert not any(s < applied["t"] < e for _, s, e in spans.values()), (applied["t"], spans)
    assert applied["t"] > min(e for _, _, e in spans.values())  # it waited past a poem end that was mid-poem elsewhere
    later = [e for e in of(ev, "poem_end") if e["t"] > applied["t"]]
    assert later and all(words(e["text"]) == 3 for e in later)


def test_an_edit_naming_a_model_that_does_not_exist_is_refused_by_name(tmp_path):
    path, sl = make(tmp_path, {"a": scene_text(10)}, ["a"])
    (tmp_path / "a.toml").write_text(scene_text(10).replace('"markov"', '"no-such-model"'))
    msg = read_again(path, changed=tmp_path / "a.toml", models={"markov"})
    assert msg.setlist is None
    assert msg.error.startswith(f"{tmp_path / 'a.toml'}: key 'model' = 'no-such-model': a model folder or a name")
