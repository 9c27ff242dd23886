"""Markov chain and Spreeder: the seeds' classic generators, on the shipped models and real WordNet."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from performance.textgen import load_model
from performance.textgen.base import ModelFileError
from performance.textgen.corpus import read_corpus
from performance.textgen.inflect import gerund, match_case, past, plural, third_person
from performance.textgen.lengths import LengthCounter, LengthRule
from performance.textgen.tokenizers import WordTokenizer
from performance.textgen.wordnet import WordNet


def poem(gen, seed: int, rate: float, lines: int = 12) -> str:
    s = gen.start(seed)
    c = LengthCounter(LengthRule("lines", lines), True)
    text = ""
    while True:
        t = s.next(rate).text
        text += t
        if c.feed(t):
            return text


@pytest.fixture(scope="module")
def spreeder():
    return load_model("spreeder")


@pytest.fixture(scope="module")
def markov():
    return load_model("markov")


def test_markov_temperature_zero_is_deterministic_and_pairs_occur_in_corpus(markov):
    a, b = poem(markov, 1, 0.0, 6), poem(markov, 99, 0.0, 6)
    assert a == b  # at temperature 0 the seed does not matter
    corpus_tokens = WordTokenizer.split(read_corpus(ROOT / "assets/corpora/poetry_en").text)
    pairs = set(zip(corpus_tokens, corpus_tokens[1:], strict=False))
    for seed in range(5):
        toks = WordTokenizer.split(poem(markov, seed, 0.9, 8))
        for pair in zip(toks, toks[1:], strict=False):
            assert pair in pairs, pair


def test_markov_seeded_and_probabilities(markov):
    assert poem(markov, 3, 0.8) == poem(markov, 3, 0.8)
    assert poem(markov, 3, 0.8) != poem(markov, 4, 0.8)
    s = markov.start(2)
    assert all(0 < s.next(1.0).p <= 1 for _ in range(200))


def test_markov_round_trip_and_corrupt_file(tmp_path):
    from performance.textgen.markov import train_markov

    corpus = read_corpus(ROOT / "assets/corpora/poetry_en/en.byron.sennacherib.txt")
    train_markov(corpus, tmp_path / "m", 3, 1)
    gen = load_model(tmp_path / "m")
    assert gen.order == 3 and poem(gen, 5, 0.7, 3) == poem(load_model(tmp_path / "m"), 5, 0.7, 3)
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelFileError, match="model.safetensors"):
        load_model(tmp_path / "m")


def test_spreeder_rate_zero_returns_the_template_and_keeps_structure(spreeder):
    text = poem(spreeder, 3, 0.0)
    corpus = read_corpus(ROOT / "assets/corpora/poetry_en").text
    lines = [ln for ln in text.split("\n") if ln.strip()]
    assert len(lines) == 12
    assert "\n".join(lines) in "\n".join(ln.rstrip() for ln in corpus.split("\n") if ln.strip())
    replaced = poem(spreeder, 3, 0.9)
    r_lines = [ln for ln in replaced.split("\n") if ln.strip()]
    assert len(r_lines) == 12 and replaced != text
    punct = lambda s: re.sub(r"[^\W\d_]+|\s+", "", s)  # noqa: E731
    assert [punct(a) for a in lines] == [punct(b) for b in r_lines]  # punctuation survives


def test_spreeder_seeded_and_rate_scales_replacement(spreeder):
    assert poem(spreeder, 7, 0.6) == poem(spreeder, 7, 0.6)
    base = WordTokenizer.split(poem(spreeder, 7, 0.0))

    def changed(rate):
        return sum(a != b for a, b in zip(base, WordTokenizer.split(poem(spreeder, 7, rate)), strict=False))

    assert 0 < changed(0.3) < changed(0.9)


def test_capitalisation_and_unknown_words(spreeder):
    # words WordNet does not know are replaced from the reservoir; capitals are kept
    assert spreeder.reservoir and spreeder.unknown
    for seed in range(10):
        base = WordTokenizer.split(poem(spreeder, seed, 0.0))
        new = WordTokenizer.split(poem(spreeder, seed, 1.0))
        for a, b in zip(base, new, strict=False):
            if a[:1].isalpha() and a != b:
                assert a[0].isupper() == b[0].isupper(), (a, b)
    assert match_case("Sea", "ocean") == "Ocean" and match_case("SEA", "ocean") == "OCEAN"


def test_inflection_of_known_cases():
    assert plural("dog") == "dogs" and plural("box") == "boxes" and plural("city") == "cities"
    assert plural("goose", {"goose": "geese"}) == "geese"
    assert past("walk") == "walked" and past("stop") == "stopped" and past("carry") == "carried"
    assert past("go", {"go": "went"}) == "went"
    assert third_person("walk") == "walks" and third_person("be") == "is"
    assert gerund("make") == "making" and gerund("run") == "running"


def test_plural_nouns_stay_plural_in_the_model(spreeder):
    wn = WordNet()
    vocab = spreeder.vocab
    found = 0
    for key, cands in spreeder.candidates.items():
        w = vocab[key]
        if w in ("dogs", "waves", "stars", "flowers", "hills"):
            found += 1
            for f in (vocab[c] for c in cands):
                base = wn.morphy(f, "n")
                assert f.endswith("s") or (base and base != f.lower()), (w, f)  # regular or irregular plural
    assert found >= 2


def test_wordnet_missing_gives_one_clear_line(tmp_path):
    with pytest.raises(ModelFileError) as e:
        WordNet(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "apt-get install wordnet-base" in msg and str(tmp_path) in msg


def test_wordnet_reads_debian_files_without_lexnames():
    wn = WordNet()
    assert not (wn.folder / "lexnames").exists()
    assert wn.morphy("geese", "n") == "goose" and wn.morphy("walked", "v") == "walk"
    assert "canine" in wn.related("dog", "n")


def test_sample_commands_from_the_issue():
    for args in (["spreeder", "--seed", "3", "--lines", "12"], ["markov", "--seed", "3", "--words", "88"]):
        a = subprocess.run([sys.executable, "run.py", "sample", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        b = subprocess.run([sys.executable, "run.py", "sample", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert a.returncode == 0 and a.stdout == b.stdout and a.stdout.strip()


def test_corrupt_spreeder_model(tmp_path):
    shutil.copytree(ROOT / "models/spreeder", tmp_path / "s")
    (tmp_path / "s" / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelFileError, match="model.safetensors"):
        load_model(tmp_path / "s")
