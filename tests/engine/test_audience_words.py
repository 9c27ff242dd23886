"""Words from the audience in the engine (issue 31 item 5): a word seeds the next poem once, is
checked and rate-limited on the engine's clock, and the operator's switch turns it off live."""

from __future__ import annotations

from conftest import ScriptModel, script_loader

from performance.protocol.commands import Command, CommandError, interpret
from performance.show.config import load_setlist
from performance.simulate import simulate

SET = """
[[scene]]
model = "x"
length = { lines = 2 }
blocklist = { words = ["scenebad"] }
pacing = { reveal = "instant", hold = 1 }
[audience]
words = true
blocklist = ["setbad"]
per_client_per_minute = 1
total_per_minute = 3
"""


def of(events, kind):
    return [e for e in events if e["event"] == kind]


def word(w: str, ip: str = "127.0.0.2") -> Command:
    return Command("/lectern/audience/word", (w,), source="audience", sender=(ip, 0))


def run(tmp_path, commands, text=SET, seconds=12.0):
    p = tmp_path / "set.toml"
    p.write_text(text)
    return simulate(load_setlist(p), seconds, loader=script_loader, commands=commands)


def replies(events):
    return [(e["t"], e["applied"], e["detail"]) for e in of(events, "command") if "audience" in e["address"]]


class PromptsSeen(ScriptModel):
    """The script model, noting each prompt a poem starts from (the worker's real Open path)."""

    seen: list[str] = []

    def start(self, seed: int, prompt: str = ""):
        PromptsSeen.seen.append(prompt)
        return super().start(seed, prompt)

    def start_batch(self, seeds, prompts=None):
        PromptsSeen.seen.extend(prompts or [""] * len(seeds))
        return super().start_batch(seeds, prompts)


def test_word_seeds_the_next_poem_once(tmp_path):
    PromptsSeen.seen = []
    p = tmp_path / "set.toml"
    p.write_text(SET)
    events = simulate(load_setlist(p), 12.0, loader=PromptsSeen, commands=[(1.0, word("Lantern"))])
    assert [(e["t"], e["word"], e["by"]) for e in of(events, "audience_word")] == [(1.0, "lantern", "audience")]
    seeds = of(events, "audience_seed")
    assert [s["word"] for s in seeds] == ["lantern"]
    starts = of(events, "poem_start")
    seeded = next(s for s in starts if s["n"] == seeds[0]["poem"])
    assert seeded["t"] > 1.0
    assert PromptsSeen.seen.count("lantern") == 1 and len(PromptsSeen.seen) >= len(starts) > seeded["n"]


def test_refusals_blocklists_and_rate_limits(tmp_path):
    events = run(tmp_path, [(1.0, word("setbad")), (1.1, word("scenebad")), (1.2, word("<script>")),
                            (1.3, word("salt")), (1.4, word("ember")),  # the same address twice in a minute
                            (1.5, word("ember", "127.0.0.3")), (1.6, word("river", "127.0.0.4")),
                            (1.7, word("stone", "127.0.0.5"))])  # a fourth word in the minute: total
    got = replies(events)
    assert [ok for _, ok, _ in got] == [False, False, False, True, False, True, True, False]
    assert "not this one" in got[0][2] and "not this one" in got[1][2] and "letters" in got[2][2]
    assert "slow down" in got[4][2] and "many words" in got[7][2]
    assert [e["word"] for e in of(events, "audience_word")] == ["salt", "ember", "river"]


def test_operator_turns_it_off_and_on_live(tmp_path):
    events = run(tmp_path, [(1.0, Command("/lectern/audience", (0,), source="osc")), (1.5, word("salt")),
                            (2.0, Command("/lectern/audience", (1,), source="key")), (2.5, word("salt"))])
    got = replies(events)
    assert [(t, ok) for t, ok, _ in got] == [(1.0, True), (1.5, False), (2.0, True), (2.5, True)]
    assert "off" in got[1][2]
    assert [e["on"] for e in of(events, "audience")] == [False, True]


def test_off_by_default_and_unreachable_from_the_network(tmp_path):
    plain = SET.split("[audience]")[0]
    got = replies(run(tmp_path, [(1.0, word("salt")), (1.5, Command("/lectern/audience", (1,), source="osc"))],
                      text=plain, seconds=3))
    assert [ok for _, ok, _ in got] == [False, False] and "[audience]" in got[1][2]
    try:  # OSC, MIDI and the operator's remote validate with network=True: the word is unknown to them
        interpret("/lectern/audience/word", ("salt",), 1)
    except CommandError as e:
        assert "unknown" in str(e).lower()
    else:
        raise AssertionError("audience/word reached from the network")
    assert interpret("/lectern/audience", (1,), 1) == ("audience", (1,))


def test_the_a_key_switches_it(tmp_path):
    import pygame  # noqa: F401  (conftest sets SDL to dummy)

    from performance.controllers.keyboard import command_for_key
    from performance.engine import Engine
    from performance.runtime.publisher import compose

    p = tmp_path / "set.toml"
    p.write_text(SET)
    e = Engine(load_setlist(p), session_seed=1)
    e.start(0.0)
    cmd = command_for_key(pygame.K_a, compose(e.snapshot()))
    assert (cmd.address, cmd.args, cmd.source) == ("/lectern/audience", (0,), "key")
    e.step(0.1, [cmd])
    assert not e.audience_on and compose(e.snapshot()).audience == "off"
    assert command_for_key(pygame.K_a, compose(e.snapshot())).args == (1,)
    p.write_text(SET.split("[audience]")[0])
    e2 = Engine(load_setlist(p), session_seed=1)
    assert command_for_key(pygame.K_a, compose(e2.snapshot())) is None  # no [audience]: the key does nothing
