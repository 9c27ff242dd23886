"""A scene paced in beats under the fake clock: words on the beat grid, tempo changes, fallback."""

from __future__ import annotations

import pytest
from conftest import script_loader

from performance.protocol.tempo import TempoGone, TempoState
from performance.show.config import load_setlist
from performance.show.schema import ConfigError
from performance.simulate import simulate

BEAT_SCENE = """
[[scene]]
name = "with the band"
model = "x"
poems = {poems}
length = {{ words = 8 }}
[scene.pacing]
pace = {{ per = "beat", words = 2 }}
start = "bar"
hold_beats = 4
bpm = {bpm}
{extra}
"""


def setlist(tmp_path, poems=2, bpm=100, extra=""):
    p = tmp_path / "band.toml"
    p.write_text(BEAT_SCENE.format(poems=poems, bpm=bpm, extra=extra))
    return load_setlist(p)


def words(events):
    """(t, text) of every revealed word (tokens with letters)."""
    return [(e["t"], e["text"]) for e in events if e["event"] == "token" and e["text"].strip()]


def link(at, bpm, beat=0.0, playing=None):
    return TempoState("link", bpm, beat, at, playing=playing, peers=1)


def refreshed(bpm, until, every=0.25, t0=0.0, beat0=0.0):
    """A Link peer at `bpm` refreshing its timeline every `every` s (beat0 falls at t0)."""
    out, t = [], t0
    while t <= until:
        out.append((t, link(t, bpm, beat0 + (t - t0) * bpm / 60)))
        t = round(t + every, 9)
    return out


def test_words_fall_on_half_beats_at_120_bpm_and_poems_start_on_bars(tmp_path):
    ev = simulate(setlist(tmp_path), 20, dt=1 / 60, loader=script_loader,
                  commands=refreshed(120, 20, t0=0.0, beat0=0.3))  # beat 0.3 at t = 0: bars at 1.85 s, 3.85 s ...
    w = words(ev)
    assert len(w) == 16
    starts = [e["t"] for e in ev if e["event"] == "poem_start"]
    assert starts[0] == pytest.approx(1.85, abs=1e-6)  # the first bar after the scene began
    # two words a beat: every 0.25 s on the grid (beat = 0.3 + 2 t)
    first = [t for t, _ in w[:8]]
    assert first == pytest.approx([1.85 + 0.25 * k for k in range(8)], abs=1e-6)
    # after the poem (last word + its half beat) a 4-beat hold, then the next bar
    end = [e["t"] for e in ev if e["event"] == "poem_end"][0]
    assert end == pytest.approx(1.85 + 8 * 0.25, abs=1e-6)
    assert starts[1] == pytest.approx(5.85, abs=1e-6)  # 3.85 + 2 s hold = 5.85, a bar line (beat 11.7 + .3 = 12)
    assert [t for t, _ in w[8:]] == pytest.approx([5.85 + 0.25 * k for k in range(8)], abs=1e-6)


def test_a_tempo_change_to_90_bpm_moves_the_reveal(tmp_path):
    cmds = refreshed(120, 1.0) + refreshed(90, 20, t0=1.1, beat0=2.2)  # beat 2.2 at 1.1 s: continuous
    ev = simulate(setlist(tmp_path, poems=1), 20, dt=1 / 60, loader=script_loader, commands=cmds)
    w = [t for t, _ in words(ev)]
    assert w[:5] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0], abs=1e-6)  # beat 0 is a bar
    # the word due on beat 2.5 (1.25 s at 120) moves to 1.3 s: from beat 2.2 at 1.1 s half beats last 1/3 s
    assert w[5:] == pytest.approx([1.1 + 0.3 * 60 / 90, 1.1 + 0.8 * 60 / 90, 1.1 + 1.3 * 60 / 90], abs=1e-6)
    tempos = [(e["t"], e["bpm"]) for e in ev if e["event"] == "tempo"]
    assert tempos == [(0.0, 120.0), (pytest.approx(1.1), 90.0)]


def test_fallback_to_seconds_when_the_tempo_stops_said_once(tmp_path, caplog):
    # the peer's last word at 2.6 s: 1.5 s later (4.1 s) the scene paces in seconds at its own bpm
    # (bpm = 100, two words a beat: 0.3 s a word), mid-poem
    ev = simulate(setlist(tmp_path, poems=2), 30, dt=1 / 60, loader=script_loader,
                  commands=refreshed(120, 2.6, every=0.2))
    lost = [e for e in ev if e["event"] == "tempo_lost"]
    assert len(lost) == 1 and lost[0]["t"] == pytest.approx(4.1) and lost[0]["source"] == "link"
    assert len([r for r in caplog.records if "pacing in seconds" in r.getMessage()]) == 1
    w = [t for t, _ in words(ev)]
    assert w[:8] == pytest.approx([0.25 * k for k in range(8)], abs=1e-6)
    starts = [e["t"] for e in ev if e["event"] == "poem_start"]
    assert starts[1] == pytest.approx(4.0, abs=1e-6)  # end 2.0 + hold_beats 4 at 120 BPM, on the bar
    assert w[8:10] == pytest.approx([4.0, 4.25], abs=1e-6)  # still on the beat grid (the loss comes at 4.1)
    assert [b - a for a, b in zip(w[9:], w[10:], strict=False)] == pytest.approx([0.3] * 6, abs=1e-6)


def test_tempo_gone_is_said_once_per_loss(tmp_path):
    cmds = refreshed(120, 2.9)
    cmds += [(1.0, TempoGone("link", "no Link peers"))] + [(t, TempoGone("link", "no Link peers")) for t in (3.0, 3.5, 4.0)]
    cmds.sort(key=lambda c: c[0])
    from performance.engine import Engine
    from performance.worker.core import WorkerCore

    eng = Engine(setlist(tmp_path, poems=50), session_seed=1)
    out: list = []
    core = WorkerCore(out.append, script_loader)
    events = list(eng.start(0.0).events)
    for i in range(0, 360):
        t = i / 60
        inbox = [*out, *(m for at, m in cmds if i - 1 < at * 60 <= i)]
        out.clear()
        o = eng.step(t, inbox)
        events += o.events
        for m in o.worker:
            core.handle(m)
        core.pump()
        if i == 150:
            assert eng.snapshot()["tempo"] == "link 120.0 BPM · bar 2 beat 2/4 · 1 peer"  # 2.5 s: beat 5
    lost = [e["t"] for e in events if e["event"] == "tempo_lost"]
    assert lost == [1.0, 3.0]  # each loss once, repeated news of it nothing
    snap = eng.snapshot()
    assert snap["tempo"] == "no Link or MIDI clock: pacing in seconds (100 BPM)"
    assert snap["notice"] == "tempo: link gone (no Link peers): pacing in seconds (100 BPM)"


def test_transport_stop_holds_the_scene_and_start_goes_on(tmp_path):
    cmds = [(t, link(t, 120, t * 2, playing=True)) for t in (0.0, 0.25, 0.5, 0.75)]
    cmds += [(t, link(t, 120, t * 2, playing=False)) for t in (1.0, 1.5, 2.0, 2.5)]
    cmds += [(t, link(t, 120, t * 2, playing=True)) for t in [3.0 + k * 0.25 for k in range(40)]]
    ev = simulate(setlist(tmp_path, poems=1), 12, dt=1 / 60, loader=script_loader, commands=cmds)
    w = [t for t, _ in words(ev)]
    assert w == pytest.approx([0.0, 0.25, 0.5, 0.75, 3.0, 3.25, 3.5, 3.75], abs=1e-6)  # nothing while stopped
    trans = [(e["t"], e["playing"]) for e in ev if e["event"] == "transport"]
    assert trans == [(1.0, False), (3.0, True)]


def test_seconds_scene_is_unchanged_by_a_tempo(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[[scene]]\nname = "a"\nmodel = "x"\npoems = 1\nlength = { words = 6 }\n'
                 'pacing = { reveal = "words", rate = 4, hold = 1 }\n')
    plain = simulate(load_setlist(p), 5, dt=1 / 60, loader=script_loader)
    linked = simulate(load_setlist(p), 5, dt=1 / 60, loader=script_loader, commands=refreshed(97, 5))
    assert words(plain) == words(linked)


@pytest.mark.parametrize("pacing, says", [
    ('pace = { per = "minute", words = 2 }', "key 'pacing.pace.per' = 'minute': allowed: beat, bar"),
    ('pace = { per = "beat" }', "'pacing.pace' = {'per': 'beat'}: needs one of words = N or chars = N"),
    ('pace = { per = "beat", words = 0 }', "key 'pacing.pace.words' = 0: must be a number from 0.01 to 64.0"),
    ('pace = { per = "beat", words = 2 }\nreveal = "chars"', "key 'pacing.reveal' = 'chars': must be \"words\""),
    ('start = "downbeat"', "key 'pacing.start' = 'downbeat': allowed: now, beat, bar"),
    ('hold_beats = -1', "key 'pacing.hold_beats' = -1: must be a number from 0.0 to 4096.0"),
    ('bpm = 5000', "key 'pacing.bpm' = 5000: must be a number from 20.0 to 999.0"),
    ('pace = { per = "bar", words = 4, swing = 1 }', "key 'pacing.pace.swing' = 1: unknown key"),
])
def test_bad_beat_keys_are_one_clear_line(tmp_path, pacing, says):
    p = tmp_path / "bad.toml"
    p.write_text(f'name = "b"\n[pacing]\n{pacing}\n')
    from performance.show.config import load_scene

    with pytest.raises(ConfigError) as e:
        load_scene(p)
    assert says in str(e.value) and "\n" not in str(e.value) and str(p) in str(e.value)


def test_fallback_seconds_come_from_bpm_unless_written(tmp_path):
    from performance.show.config import load_scene

    p = tmp_path / "a.toml"
    p.write_text('name = "a"\n[pacing]\npace = { per = "bar", words = 4 }\nhold_beats = 8\npause_every = 2\n'
                 'pause_beats = 16\nbpm = 90\n')
    pc = load_scene(p).pacing
    assert (pc.reveal, pc.rate, pc.hold, pc.pause_seconds) == ("words", 1.5, pytest.approx(16 / 3), pytest.approx(32 / 3))
    p.write_text('name = "a"\n[pacing]\npace = { per = "beat", chars = 8 }\nrate = 12\nhold = 1\n')
    pc = load_scene(p).pacing
    assert (pc.reveal, pc.rate, pc.hold, pc.beats.unit_beats) == ("chars", 12.0, 1.0, 0.125)


def test_the_operator_view_shows_tempo_and_beat_from_the_snapshot(tmp_path):
    from rich.console import Console

    from performance.engine import Engine
    from performance.operator import OperatorView
    from performance.runtime.publisher import compose

    eng = Engine(setlist(tmp_path), session_seed=1)
    eng.start(0.0)
    eng.step(5.3, [link(5.0, 120, 0.25)])
    eng.step(6.0, [link(6.0, 120, 2.25)])  # beat 2.25 at 6.0 s: bar 1, beat 3
    view = OperatorView()
    view.update(compose(eng.snapshot(), controllers={"link": "120.0 BPM · 1 peer"}), fps=60.0)
    console = Console(record=True, width=120)
    console.print(view.table())
    text = console.export_text()
    assert "tempo" in text and "link 120.0 BPM · bar 1 beat 3/4 · 1 peer" in text
    assert "120.0 BPM · 1 peer" in text.split("Link", 1)[1]


def test_link_wins_over_a_midi_clock_heard_beside_it_and_the_clock_takes_over_when_link_goes(tmp_path):
    midi = [(t, TempoState("midi", 90, t * 1.5, t, playing=None)) for t, _ in refreshed(90, 20, every=0.125)]
    cmds = sorted(refreshed(120, 2.0) + [(2.05, TempoGone("link", "the last Link peer left"))] + midi,
                  key=lambda c: c[0])
    ev = simulate(setlist(tmp_path, poems=2), 20, dt=1 / 60, loader=script_loader, commands=cmds)
    tempos = [(e["t"], e["source"], e["bpm"]) for e in ev if e["event"] == "tempo"]
    assert tempos[0] == (0.0, "link", 120.0) and tempos[1][1:] == ("midi", 90.0) and 2.05 <= tempos[1][0] <= 2.2
    w = [t for t, _ in words(ev)]
    assert w[:8] == pytest.approx([0.25 * k for k in range(8)], abs=1e-6)  # Link's 120 BPM, not the clock's 90
    assert [b - a for a, b in zip(w[9:], w[10:], strict=False)] == pytest.approx([1 / 3] * 6, abs=1e-6)


def test_a_pause_overlapping_a_transport_stop_is_not_counted_twice(tmp_path):
    from performance.protocol.commands import Command

    cmds = [(t, link(t, 120, t * 2, playing=True)) for t in (0.0, 0.25, 0.5, 0.75)]
    cmds += [(t, link(t, 120, t * 2, playing=False)) for t in (1.0, 1.5, 2.0, 2.5)]
    cmds += [(t, link(t, 120, t * 2, playing=True)) for t in [3.0 + k * 0.25 for k in range(60)]]
    cmds += [(1.5, Command("/lectern/pause")), (4.0, Command("/lectern/resume"))]
    cmds.sort(key=lambda c: c[0])
    ev = simulate(setlist(tmp_path, poems=1), 12, dt=1 / 60, loader=script_loader, commands=cmds)
    w = [t for t, _ in words(ev)]
    # stopped 1.0-3.0 and paused 1.5-4.0: the scene waited from 1.0 to 4.0, once
    assert w == pytest.approx([0.0, 0.25, 0.5, 0.75, 4.0, 4.25, 4.5, 4.75], abs=1e-6)
