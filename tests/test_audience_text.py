"""What the audience reads (issue 12): fresh poems on every loop and jump, whole words in a words
reveal whatever the model's tokens, and a sentence scene that shows one sentence. All on the fake
clock with the shipped models, so each check is exact and fast."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT

from performance.control.command import Command
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
        assert not (re.search(r"[\w'’-]$", shown) and re.match(r"[\w'’-]", rest)), (t, shown[-30:], rest[:10])
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
