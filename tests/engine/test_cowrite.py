"""Co-writing (issue 31 item 3) on the fake clock with the shipped Markov chain and char model:
candidates offered at the right moments, a pick replacing the next word and re-feeding the stream
(what follows is what the model writes from the chosen word), the model's word standing at the
exact deadline, the marks read back from a real transcript file."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from conftest import ROOT  # noqa: F401  (the path and SDL set-up)

from performance.protocol.commands import validate
from performance.record.transcript import TranscriptWriter, chosen_words, read_events
from performance.show.config import load_setlist
from performance.show.schema import ConfigError
from performance.simulate import simulate
from performance.textgen import load_model

SCENE = """
name = "cowrite"
[[scene]]
model = "{model}"
layout = "{layout}"
length = {{ words = {words} }}
temperature = {{ program = "constant", value = 0.8 }}
pacing = {{ reveal = "words", rate = 4, hold = 1 }}
poems = 1
{cowrite}
"""
RATE = 4.0


def setlist(tmp_path, model="markov", cowrite='cowrite = { every = "word", words = 5, choices = 5, wait = 3.0 }',
            layout="reader", words=30):
    p = tmp_path / "s.toml"
    p.write_text(SCENE.format(model=model, cowrite=cowrite, layout=layout, words=words))
    return load_setlist(p)


def of(events, kind):
    return [e for e in events if e["event"] == kind]


def choose(n: int, source: str = "osc"):
    return validate("choose", [n], scene_count=1, source=source)


def text_before(events, event):
    """The poem's text revealed before an event (the token events ahead of it in the log)."""
    return "".join(e["text"] for e in events[:events.index(event)] if e["event"] == "token")


def first_token_after(events, event):
    return next(e for e in events[events.index(event):] if e["event"] == "token")


def test_every_fifth_word_is_offered_and_a_timeout_keeps_the_models_word_at_the_deadline(tmp_path):
    events = simulate(setlist(tmp_path, words=60), 60, dt=0.05, session_seed=7)
    offers, choices = of(events, "choice_offer"), of(events, "choice")
    assert len(offers) >= 4 and len(choices) == len(offers)  # (a place with one candidate offers no choice)
    for off, ch in zip(offers, choices, strict=True):
        before = text_before(events, off)
        assert len(re.findall(r"[^\W\d_]+(?:['’][^\W\d_]+)*", before)) % 5 == 4  # the 5th, 10th... word is offered
        assert 2 <= len(off["words"]) <= 5 and off["until"] == pytest.approx(off["t"] + 3.0)
        assert ch["by"] == "model" and ch["t"] == pytest.approx(off["until"])  # exactly at the deadline
        shown = first_token_after(events, off)
        assert shown["t"] == pytest.approx(off["until"])  # the model's own word, at the deadline
        assert shown["text"].strip() == ch["word"]
    # nobody chose: the poem is the one the model writes without co-writing (same seed, same words)
    plain = simulate(setlist(tmp_path, cowrite="", words=60), 60, dt=0.05, session_seed=7)
    assert of(events, "poem_end")[0]["text"] == of(plain, "poem_end")[0]["text"]
    assert "chosen" not in of(events, "poem_end")[0]


def refed(model: str, seed: int, before: list[str], word: str, n: int) -> str:
    """What the model writes after the chosen word. A word chain: a fresh stream under the poem's
    seed, primed with the poem so far and the word. A character model: its own stream, replayed to
    the place the word was offered, the word echoed into its state, its seeded draws going on."""
    gen = load_model(model)
    if model == "markov":
        s = gen.start(seed, "".join(before) + word)
    else:
        s = gen.start(seed, "")
        assert [s.next(0.8).text for _ in before] == before
        s.echo = gen.tok.encode(word)
    while s.echo:
        s.next(1.0)
    return "".join(s.next(0.8).text for _ in range(n))


@pytest.mark.parametrize("model", ["markov", "default"])
def test_a_pick_replaces_the_next_word_and_the_text_goes_on_from_it(tmp_path, model):
    events = simulate(setlist(tmp_path, model=model, words=40), 30, dt=0.05, session_seed=7,
                      commands=[(2.0, choose(3))])
    off = of(events, "choice_offer")[0]
    ch = of(events, "choice")[0]
    assert off["t"] < 2.0 < off["until"] and ch["t"] == 2.0 and ch["by"] == "osc" and ch["n"] == 3
    word = off["words"][2][0]
    assert ch["word"] == word.strip()
    tokens = of(events, "token")
    i = next(k for k, e in enumerate(tokens) if e.get("chosen"))
    assert tokens[i]["t"] == 2.0 and tokens[i]["text"] == word and tokens[i]["chosen"] == "osc"
    prefix = "".join(e["text"] for e in tokens[:i + 1])
    after = "".join(e["text"] for e in tokens[i + 1:i + 9])
    seed = of(events, "poem_start")[0]["seed"]
    # the continuation is conditioned on the chosen word: exactly what the model writes after it
    assert after == refed(model, seed, [e["text"] for e in tokens[:i]], word, 8)
    end = of(events, "poem_end")[0]
    assert end["text"].startswith(prefix.strip()[:20]) and word.strip() in end["text"]
    assert end["chosen"] == [[i, word.strip(), "osc"]]


def test_every_line_and_hold_offer_at_their_moments(tmp_path):
    events = simulate(setlist(tmp_path, cowrite='cowrite = { every = "line", wait = 1.0 }'), 30, dt=0.05)
    offers = of(events, "choice_offer")
    assert len(offers) >= 2
    for off in offers:
        before = text_before(events, off)
        assert before == "" or before.endswith("\n")  # the first word of each line
    events = simulate(setlist(tmp_path, cowrite='cowrite = { every = "hold", wait = 1.0 }'), 12, dt=0.05,
                      commands=[(4.0, choose(0, "key"))])
    offers = of(events, "choice_offer")
    assert len(offers) == 1 and 4.0 <= offers[0]["t"] < 4.6  # the next word after the hold, only that one
    said = [e for e in of(events, "command") if e["address"] == "/lectern/choose"]
    assert said[0]["applied"] and said[0]["source"] == "key"


def test_refusals_are_one_line_and_the_show_goes_on(tmp_path):
    events = simulate(setlist(tmp_path), 6, dt=0.05, commands=[(0.5, choose(2)), (1.5, choose(9))])
    cmds = [e for e in of(events, "command") if e["address"] == "/lectern/choose"]
    assert cmds[0]["applied"] is False and cmds[0]["detail"] == "choose: no choice is on stage now"
    n = len(of(events, "choice_offer")[0]["words"])
    assert cmds[1]["applied"] is False and cmds[1]["detail"] == f"choose: 9 is not on stage (1..{n})"
    events = simulate(setlist(tmp_path, cowrite=""), 3, dt=0.05, commands=[(0.5, choose(1))])
    cmd = [e for e in of(events, "command") if e["address"] == "/lectern/choose"][0]
    assert cmd["applied"] is False and "no cowrite table" in cmd["detail"]


@pytest.mark.parametrize("bad, says", [
    ('cowrite = { every = "often" }', "key 'cowrite.every' = 'often'"),
    ('cowrite = { choices = 12 }', "key 'cowrite.choices' = 12"),
    ('cowrite = { wait = -1 }', "key 'cowrite.wait' = -1"),
    ('cowrite = { every = "line", words = 3 }', 'only with every = "word"'),
    ('cowrite = { colour = 1 }', "cowrite.colour"),
])
def test_bad_cowrite_keys_are_one_clear_line(tmp_path, bad, says):
    with pytest.raises(ConfigError) as e:
        setlist(tmp_path, cowrite=bad)
    assert says in str(e.value) and "s.toml" in str(e.value) and "\n" not in str(e.value)


def test_cowrite_needs_a_words_reveal(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[[scene]]\nmodel = "markov"\npacing = { reveal = "chars" }\ncowrite = { every = "word" }\n')
    with pytest.raises(ConfigError, match='needs \\[pacing\\] reveal = "words"'):
        load_setlist(p)


def test_the_marks_are_in_the_transcript_file_and_read_back(tmp_path):
    writer = TranscriptWriter(tmp_path, "cowrite", datetime(2026, 1, 1, tzinfo=UTC))
    writer.start()
    cmds = [(2.0, choose(1, "remote")), (5.5, choose(2, "midi"))]
    for ev in simulate(setlist(tmp_path, layout="flick", words=50), 16, dt=0.05, commands=cmds):
        writer.write(ev)
    writer.close()
    events = read_events(writer.jsonl_path)
    picked = chosen_words(events)
    assert [by for _, _, by in picked] == ["remote", "midi"]
    choices = [e for e in of(events, "choice") if e["by"] != "model"]
    assert [w for _, w, _ in picked] == [c["word"] for c in choices]
    assert of(events, "scene")[0]["cowrite"] == {"every": "word", "words": 5, "choices": 5, "wait": 3.0}


def test_picking_the_models_own_word_keeps_its_text_and_marks_the_word(tmp_path):
    plain = simulate(setlist(tmp_path, model="default", words=40), 60, dt=0.05, session_seed=7)
    pairs = list(zip(of(plain, "choice_offer"), of(plain, "choice"), strict=True))
    off, ch = next((o, c) for o, c in pairs if c["word"] in [w.strip() for w, _ in o["words"]])
    n = [w.strip() for w, _ in off["words"]].index(ch["word"]) + 1
    sent = []
    events = simulate(setlist(tmp_path, model="default", words=40), 60, dt=0.05, session_seed=7,
                      commands=[(off["t"] + 0.5, choose(n, "midi"))], on_outbox=lambda t, out: sent.extend(out.worker))
    assert of(events, "poem_end")[0]["text"] == of(plain, "poem_end")[0]["text"]  # nothing was re-fed
    assert not [m for m in sent if type(m).__name__ == "Force"]
    assert [(w, by) for _, w, by in chosen_words(events)] == [(ch["word"], "midi")]


def test_a_pause_moves_the_deadline_and_the_stage_is_told(tmp_path):
    plain = simulate(setlist(tmp_path), 12, dt=0.05, session_seed=7)
    off = of(plain, "choice_offer")[0]
    pause = validate("pause", [], scene_count=1, source="key")
    resume = validate("resume", [], scene_count=1, source="key")
    events = simulate(setlist(tmp_path), 20, dt=0.05, session_seed=7,
                      commands=[(off["t"] + 1.0, pause), (off["t"] + 6.0, resume)])
    offers = of(events, "choice_offer")
    assert offers[1]["resumed"] and offers[1]["until"] == pytest.approx(off["until"] + 5.0)
    assert offers[1]["t"] == pytest.approx(off["t"] + 6.0)
    assert of(events, "choice")[0]["t"] == pytest.approx(off["until"] + 5.0)  # the wait is not eaten by the pause
