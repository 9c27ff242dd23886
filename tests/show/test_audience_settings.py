"""Words from the audience (issue 31 item 5): the [audience] table, the one word rule and the
rate limits, on a clock the test holds."""

from __future__ import annotations

import pytest

from performance.show.audience_settings import AudienceSettings, RateLimit, normal, refusal
from performance.show.config import load_setlist
from performance.show.schema import ConfigError

BASE = """
[[scene]]
model = "x"
length = { lines = 2 }
"""


def load(tmp_path, table: str):
    p = tmp_path / "set.toml"
    p.write_text(BASE + table)
    return load_setlist(p)


def test_off_by_default_and_read_when_given(tmp_path):
    assert load(tmp_path, "").audience is None
    a = load(tmp_path, '[audience]\nwords = true\nblocklist = ["Grim"]\nmax_chars = 12\n'
                       'per_client_per_minute = 1\ntotal_per_minute = 5\noffer = 2\nchoices = ["Salt", "ember"]\n').audience
    assert a == AudienceSettings(True, frozenset({"grim"}), 12, 1, 5, 2, ("salt", "ember"))
    assert AudienceSettings.from_dict(a.to_dict()) == a
    assert load(tmp_path, "[audience]\n").audience.words is False  # the table alone turns nothing on


@pytest.mark.parametrize("table, says", [
    ("[audience]\nwords = 1\n", "words"),
    ("[audience]\nmax_chars = 0\n", "max_chars"),
    ("[audience]\nmax_chars = 500\n", "max_chars"),
    ("[audience]\nper_client_per_minute = -3\n", "per_client_per_minute"),
    ("[audience]\noffer = 3\nchoices = [\"a\"]\n", "offer"),
    ("[audience]\nchoices = [\"two words\"]\n", "choices"),
    ("[audience]\nwordz = true\n", "wordz"),
])
def test_bad_values_one_clear_line(tmp_path, table, says):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, table)
    line = str(e.value)
    assert "\n" not in line and "set.toml" in line and says in line


@pytest.mark.parametrize("word", ["salt", "Ember", "  river ", "salt-marsh", "o'er", "été", "дождь"])
def test_words_taken(word):
    assert refusal(word, 24) is None
    assert normal(word) == word.strip().lower()


@pytest.mark.parametrize("word, why", [
    ("", "empty"), ("   ", "empty"), ("two words", "letters only"), ("<script>alert(1)</script>", "at most 24"), ("<script>", "letters only"),
    ("<b>", "letters only"), ("r2d2", "letters only"), ("x" * 25, "at most 24"), ("a\nb", "letters only"),
    ("-dash", "letters only"), (42, "a text"), (None, "a text"), ("grim", "not this one"), ("GRIM", "not this one"),
])
def test_words_refused_in_one_line(word, why):
    got = refusal(word, 24, frozenset({"grim"}))
    assert got is not None and why in got and "\n" not in got


def test_offered_choices_only():
    assert refusal("salt", 24, choices=("salt", "ember")) is None
    assert "offered" in refusal("river", 24, choices=("salt", "ember"))


def test_rate_limit_per_client_and_total_on_a_fake_clock():
    r = RateLimit(per_client=2, total=3)
    assert r.take("a", 0.0) is None and r.take("a", 1.0) is None
    assert "slow down" in r.take("a", 2.0) and "58 s" in r.take("a", 2.0)  # the first word leaves the minute at 60 s
    assert r.take("b", 3.0) is None
    assert "many words" in r.take("c", 4.0)  # three in the minute: everyone waits
    assert r.take("c", 60.0) is None  # a's first word has left the minute
    assert "many words" in r.take("a", 60.5)  # 1.0, 3.0 and 60.0 fill the minute
    assert r.take("a", 61.0) is None  # 1.0 has left the minute


def test_rate_limit_flood_of_addresses_stays_bounded():
    r = RateLimit(per_client=1, total=10, max_clients=50)
    taken = sum(r.take(f"127.0.0.{i % 250}.{i}", i * 0.001) is None for i in range(5000))
    assert taken == 10 and len(r._by) <= 50
