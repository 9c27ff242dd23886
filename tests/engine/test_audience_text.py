"""What the audience reads (issue 12): fresh poems on every loop and jump, whole words in a words
reveal whatever the model's tokens, and a sentence scene that shows one sentence. All on the fake
clock with the shipped models, so each check is exact and fast."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from performance.protocol.commands import Command
from performance.show.config import load_setlist
from performance.simulate import simulate

LOOP = """
name = "loop"
loop = true
[[scene]]
name = "spreeder"
model = "spreeder"
poems = 1
length = { lines = 3 }
seed = { program = "new" }
pacing = { reveal = "instant", hold = 0.5 }
[[scene]]
name = "markov"
model = "markov"
poems = 1
length = { lines = 3 }
seed = { program = "new" }
pacing = { reveal = "instant", hold = 0.5 }
"""


def of(events, kind):
    return [e for e in events if e["event"] == kind]


def test_a_looping_setlist_never_repeats_a_seed_or_a_poem(tmp_path):
    (tmp_path / "s.toml").write_text(LOOP)
    events = simulate(load_setlist(tmp_path / "s.toml"), 60, dt=0.05, session_seed=694782787)
    starts, ends = of(events, "poem_start"), of(events, "poem_end")
    assert len(ends) >= 12  # six passes of the loop at least
    seeds = [e["seed"] for e in starts]
    assert len(set(seeds)) == len(seeds), seeds
    texts = [e["text"] for e in ends]
    assert len(set(texts)) == len(texts)
    # the session seed still reproduces the whole session, loops included
    again = simulate(load_setlist(tmp_path / "s.toml"), 60, dt=0.05, session_seed=694782787)
    assert [e["seed"] for e in of(again, "poem_start")] == seeds


def test_back_and_jumps_bring_a_new_poem_not_the_first_one_again(tmp_path):
    (tmp_path / "s.toml").write_text(LOOP.replace("loop = true", "loop = false").replace("poems = 1", "poems = 50"))
    cmds = [(t, Command("/lectern/scene", (1,), source="osc")) for t in (2.0, 4.0, 6.0)]
    cmds += [(8.0, Command("/lectern/back", source="key"))]
    events = simulate(load_setlist(tmp_path / "s.toml"), 12, dt=0.05, commands=cmds)
    seeds = [e["seed"] for e in of(events, "poem_start")]
    assert len(seeds) >= 8 and len(set(seeds)) == len(seeds)


def test_fixed_and_listed_seeds_keep_their_meaning(tmp_path):
    text = LOOP.replace('seed = { program = "new" }', 'seed = { program = "fixed", value = 11 }', 1)
    (tmp_path / "s.toml").write_text(text)
    events = simulate(load_setlist(tmp_path / "s.toml"), 20, dt=0.05)
    assert {e["seed"] for e in of(events, "poem_start") if e["scene"] == 1} == {11}


WORDS_SCENE = """
name = "words"
[[scene]]
model = "{model}"
length = {{ words = 60 }}
temperature = {{ program = "constant", value = 0.8 }}
pacing = {{ reveal = "words", rate = 6, hold = 1 }}
lookahead = 4
"""


@pytest.mark.parametrize("model", ["default", "markov", "spreeder"])
def test_a_words_reveal_shows_whole_words_only(tmp_path, model):
    (tmp_path / "s.toml").write_text(WORDS_SCENE.format(model=model))
    events = simulate(load_setlist(tmp_path / "s.toml"), 8, dt=1 / 30)
    tokens = of(events, "token")
    assert tokens
    # what the stage shows at the end of each instant: never ending inside a word
    by_t: dict[float, str] = {}
    text = ""
    for e in tokens:
        text += e["text"]
        by_t[e["t"]] = text
    steps = sorted(by_t.items())
    assert len(steps) >= 10
    final = "".join(e["text"] for e in tokens)
    for t, shown in steps[:-1]:
        rest = final[len(shown):]
        assert not (re.search(r"[\w'’-]\Z", shown) and re.match(r"[\w'’-]", rest)), (t, shown[-30:], rest[:10])
    # new words come at the scene's rate: 1/6 s apart (or later, never sooner)
    word_times, count = [], 0
    for t, shown in steps:
        n = len(re.findall(r"[\w'’-]+", shown))
        if n > count:
            word_times.append(t)
            count = n
    gaps = [b - a for a, b in zip(word_times, word_times[1:], strict=False)]
    assert min(gaps) >= 1 / 6 - 1e-6


def test_a_sentence_scene_shows_one_sentence(tmp_path):
    (tmp_path / "s.toml").write_text("""
name = "sentences"
[[scene]]
model = "default"
poems = 8
length = { sentences = 1, max_words = 30 }
temperature = { program = "random", lo = 0.25, hi = 1.25 }
pacing = { reveal = "instant", hold = 0.1 }
""")
    events = simulate(load_setlist(tmp_path / "s.toml"), 60, dt=0.05, session_seed=3)
    ends = of(events, "poem_end")
    assert len(ends) == 8
    for e in ends:
        text = e["text"]
        words = re.findall(r"[^\W\d_]+(?:['’][^\W\d_]+)*", text)
        assert len(words) <= 31, text
        inner = re.findall(r"[.!?]+[\"'”’)\]]*(?=\s)", text)  # a sentence end before the last word
        assert not inner, text


def test_max_words_only_with_sentences(tmp_path):
    from performance.show.schema import ConfigError

    (tmp_path / "s.toml").write_text('[[scene]]\nmodel = "markov"\nlength = { lines = 3, max_words = 9 }\n')
    with pytest.raises(ConfigError, match="max_words"):
        load_setlist(tmp_path / "s.toml")


def test_brerin_scene_caps_its_sentences():
    scene = load_setlist(ROOT / "setlists/brerin.toml").entries[0].scene
    assert scene.length.unit == "sentences" and scene.length.max_words == 40


def run_engine(setlist, until: float, *, dt: float = 0.05, commands=(), voice_line_s: float | None = None,
               budget: int | None = None):
    """The engine with the real worker core, a fake clock and (optionally) a voice that takes
    voice_line_s per line, one line at a time, as the sound system reports it, and a generator
    that writes at most `budget` tokens per step (a slow model)."""
    from performance.engine import Engine
    from performance.protocol.actions import Keep, SoundCtl, Speak, SpeechState
    from performance.worker.core import WorkerCore

    events, files, worker_out = [], [], []
    core = WorkerCore(worker_out.append, None)
    engine = Engine(setlist, session_seed=5)
    speech: list = []  # queued lines
    spoken: list = []  # (poem, line, start, end)
    busy_until = 0.0
    pending = sorted(commands, key=lambda c: c[0])

    def route(now, out):
        nonlocal busy_until
        events.extend(out.events)
        files.extend(f for f in out.files if isinstance(f, Keep))
        for a in out.sound:
            if isinstance(a, Speak):
                speech.append(a)
            elif isinstance(a, SoundCtl) and a.op in ("cancel", "panic"):
                speech.clear()
        for m in out.worker:
            core.handle(m)
        if budget is None:
            core.pump()

    route(0.0, engine.start(0.0))
    t = 0.0
    while t < until:
        t = round(t + dt, 6)
        if voice_line_s is not None:
            if speech and busy_until <= t:
                a = speech.pop(0)
                start = max(t, busy_until)
                busy_until = start + voice_line_s
                spoken.append((a.poem, a.line, start, busy_until))
        inbox = []
        if voice_line_s is not None:  # the sound system's state, as the runtime sends it each frame
            inbox.append(SpeechState(bool(speech) or busy_until > t, len(speech)))
        while pending and pending[0][0] <= t:
            inbox.append(pending.pop(0)[1])
        if budget is not None:
            core.work(budget)
        for _ in range(100):
            inbox.extend(worker_out)
            worker_out.clear()
            route(t, engine.step(t, inbox))
            inbox = []
            if not worker_out:
                break
    return events, files, spoken


def test_with_hold_the_next_poem_waits_for_the_voice_and_no_line_is_dropped(tmp_path):
    (tmp_path / "s.toml").write_text("""
name = "spoken"
[[scene]]
name = "one"
model = "markov"
duration = 8
length = { lines = 3 }
pacing = { reveal = "words", rate = 12, hold = 0.5 }
voice = { mode = "line", when_behind = "hold" }
[[scene]]
name = "two"
model = "markov"
length = { lines = 2 }
pacing = { reveal = "words", rate = 12, hold = 0.5 }
""")
    events, _, spoken = run_engine(load_setlist(tmp_path / "s.toml"), 40, voice_line_s=2.0)
    starts = {e["n"]: e["t"] for e in of(events, "poem_start")}
    last_line_end: dict[int, float] = {}
    for poem, _line, _s, end in spoken:
        last_line_end[poem] = max(end, last_line_end.get(poem, 0))
    for n, t in starts.items():
        if n - 1 in last_line_end:
            assert t >= last_line_end[n - 1] - 0.05 - 1e-9, (n, t, last_line_end[n - 1])
    # every line of every poem of scene one that finished was spoken, the last one included
    scene_two = next(e["t"] for e in of(events, "scene") if e["n"] == 2)
    for e in of(events, "poem_end"):
        if e["t"] < scene_two and not e["partial"]:
            lines = [ln for ln in e["text"].split("\n") if ln.strip()]
            assert sorted(li for p, li, _, _ in spoken if p == e["n"]) == list(range(len(lines))), e["n"]
    assert scene_two >= max(last_line_end[n] for n in last_line_end if starts[n] < scene_two) - 0.05 - 1e-9


def test_keep_saves_the_poem_on_screen_during_a_flick(tmp_path):
    (tmp_path / "s.toml").write_text("""
name = "flick"
[[scene]]
layout = "flick"
model = "markov"
length = { words = 40 }
seed = { program = "new" }
pacing = { reveal = "instant", hold = 1.0 }
ahead = 2
""")
    events, files, _ = run_engine(load_setlist(tmp_path / "s.toml"), 6,
                                  commands=[(t, Command("/lectern/keep", source="key")) for t in (2.52, 4.03)])
    keeps = of(events, "keep")
    assert len(keeps) == 2 and len(files) == 2
    ends = {e["n"]: e for e in of(events, "poem_end")}
    starts = of(events, "poem_start")
    for keep, f in zip(keeps, files, strict=True):
        # the poem on screen: the last one whose text was revealed by the frame before the key
        shown = max(e["poem"] for e in of(events, "token") if e["t"] <= keep["t"] - 0.05 + 1e-9)
        assert keep["poem"] == shown == f.poem
        assert f.text.strip() and f.text == ends[shown]["text"]
        start = next(e for e in starts if e["n"] == shown)
        assert f"seed {start['seed']}" in f.footer and "markov" in f.footer
        assert "temperature 0.00" not in f.footer


def test_keep_mid_poem_saves_all_that_was_written_marked_partial(tmp_path):
    (tmp_path / "s.toml").write_text("""
name = "slow"
[[scene]]
model = "markov"
length = { words = 60 }
pacing = { reveal = "words", rate = 4, hold = 1.0 }
lookahead = 30
""")
    events, files, _ = run_engine(load_setlist(tmp_path / "s.toml"), 3,
                                  commands=[(2.0, Command("/lectern/keep", source="key"))])
    (f,) = files
    shown = "".join(e["text"] for e in of(events, "token") if e["t"] <= 2.0)
    assert f.text.startswith(shown.strip()) and len(f.text) > len(shown.strip())
    assert f.footer.endswith("(partial)")


FLICK = """
name = "flick"
[[scene]]
layout = "flick"
model = "markov"
length = { words = 222 }
seed = { program = "new" }
pacing = { reveal = "instant", hold = 0.3 }
ahead = 4
"""


@pytest.mark.parametrize("budget", [None, 4], ids=["fast-model", "slow-model"])
def test_the_flick_flicks_whatever_the_model_speed(tmp_path, budget):
    (tmp_path / "s.toml").write_text(FLICK)
    events, _, _ = run_engine(load_setlist(tmp_path / "s.toml"), 30, dt=1 / 60, budget=budget)
    starts = of(events, "poem_start")
    scene_t = of(events, "scene")[0]["t"]
    assert starts[0]["t"] - scene_t <= 2.0
    times = [e["t"] for e in starts]
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    assert len(gaps) >= 20
    assert gaps[len(gaps) // 2] <= 0.6 and gaps[int(len(gaps) * 0.95)] <= 1.5 and gaps[-1] <= 3.0, gaps
    # the caption (poem_start) and the text on screen (its tokens) change at the same moment
    first_token = {}
    for e in of(events, "token"):
        first_token.setdefault(e["poem"], e["t"])
    for e in starts:
        if e["n"] in first_token:
            assert first_token[e["n"]] == pytest.approx(e["t"]), e["n"]
    ends = [e for e in of(events, "poem_end") if not e["partial"]]
    words = [len(re.findall(r"[^\W\d_]+(?:['’][^\W\d_]+)*", e["text"])) for e in ends]
    if budget is None:
        assert all(w >= 222 for w in words) and not any(e.get("cut_short") for e in ends)
    else:
        assert all(e.get("cut_short") for e in ends) and all(0 < w < 222 for w in words)


def test_a_word_longer_than_the_look_ahead_still_completes(tmp_path):
    """Held letters count against the look-ahead, so a char model's word longer than it must still
    be granted the letters that complete it (no stall)."""
    (tmp_path / "s.toml").write_text(WORDS_SCENE.format(model="default").replace("lookahead = 4", "lookahead = 2"))
    events = simulate(load_setlist(tmp_path / "s.toml"), 15, dt=1 / 30)
    ends = of(events, "poem_end")
    assert ends and not ends[0]["partial"]
    assert max(len(w) for w in re.findall(r"[\w'’-]+", ends[0]["text"])) > 2
