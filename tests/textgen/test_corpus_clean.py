"""The cleaned corpus (issue 12 item 9): reproducible from the originals, free of editorial marks;
Spreeder templates without titles; the Markov originality guard and its scene key."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest
from conftest import ROOT

from performance.show.config import ConfigError, scene_from_dict
from performance.textgen import load_model
from performance.textgen.cleaning import clean_folder, clean_text
from performance.textgen.corpus import read_corpus
from performance.textgen.originality import OriginalityGuard
from performance.textgen.quality import words_of
from performance.textgen.spreeder import _templates

CLEAN = ROOT / "assets/corpora/poetry_en"
ORIGINAL = ROOT / "assets/corpora/poetry_en_original"


def test_cleaning_the_originals_reproduces_the_shipped_corpus_and_its_hashes(tmp_path):
    hashes = clean_folder(ORIGINAL, tmp_path / "c")
    recorded = dict(re.findall(r"^\| (en\.\S+) \| ([0-9a-f]{64}) \|$", (CLEAN / "SOURCES.md").read_text(), re.M))
    assert recorded == hashes
    for name, h in hashes.items():
        assert (tmp_path / "c" / name).read_bytes() == (CLEAN / name).read_bytes()
        assert hashlib.sha256((CLEAN / name).read_bytes()).hexdigest() == h


def test_the_marks_the_models_learned_are_gone():
    raw = read_corpus(ORIGINAL).text
    text = read_corpus(CLEAN).text
    # each defect is in the original (so the test means something) and not in the clean text
    for mark in ("| st-ers", "M-egdalen", "THE LEADEN ECHO", "PARADISE LOST", "\n#\n", "Dec. 7th. 1875", "[Eye,"):
        assert mark in raw
        assert mark not in text
    assert not re.search(r"\d", text)
    for marked in ("t-eme's", "v-est", "-eur", "wh-elms", "th-eughts", "c-emfort", "quench-ed"):  # stress marks
        assert marked in raw and marked not in text
    assert "stars principal" in text and "time's vast" in text
    assert "HE stood among a crowd at Dromahair;" in text  # verse in capitals stays


def test_stress_marks_repair_to_corpus_words_and_compounds_stay():
    counts = Counter({"stars": 5, "time's": 3, "vast": 4, "vest": 1, "our": 9, "never": 2, "can": 7})
    out = clean_text("I c-en see st-ers | t-eme's v-est, -eur Never-eldering\nTHE TITLE\n12\n", counts)
    assert out == "I can see stars time's vast, our Never-eldering\n"


def test_spreeder_templates_skip_titles_and_headings():
    verse = "".join(f"line {i} of the poem goes on,\n" for i in range(11)) + "and ends here.\n"
    text = verse + "\nTHE LEADEN ECHO\n" + verse.replace("line", "row") + "\nBOOK II.\n" + verse
    templates = _templates(text)
    assert len(templates) == 3
    assert not any("ECHO" in t or "BOOK" in t for t in templates)


@pytest.fixture(scope="module")
def chain():
    return load_model("markov")  # the shipped chain, rebuilt from the cleaned corpus


def _lines(gen, originality, seeds=6, tokens=400):
    out = []
    for seed in range(seeds):
        s = gen.start(seed)
        s.set_originality(originality)
        text = "".join(s.next(0.7).text for _ in range(tokens))
        out += [tuple(words_of(ln)) for ln in text.split("\n")[:-1]]
    return [ln for ln in out if len(ln) >= 3]


def test_originality_guard_stops_whole_lines_being_recited(chain):
    corpus_lines = {tuple(words_of(ln)) for ln in read_corpus(CLEAN).text.split("\n")}
    free = _lines(chain, None)
    guarded = _lines(chain, 0.7)
    assert sum(ln in corpus_lines for ln in free) >= 5  # without the guard the chain recites lines
    assert sum(ln in corpus_lines for ln in guarded) == 0


def test_guard_rule_is_markovifys():
    # corpus: one line "a b c d e f g h i j" (ids 1..10) and one "k l" (ids 11, 12)
    g = OriginalityGuard(__import__("numpy").array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -1, 11, 12, -1], dtype="int32"))
    # 10 words: runs of more than round(0.7 * 10) = 7 are copies
    assert g.copies([1, 2, 3, 4, 5, 6, 7, 8, 99, 98])  # 8 in a row
    assert not g.copies([1, 2, 3, 4, 5, 6, 7, 99, 98, 97])  # 7 in a row
    assert not g.copies([10, 11, 12])  # a run across a corpus line break is no run
    assert g.copies([11, 12])
    assert not g.copies([1, 2, 3], ratio=1.0)


def test_scene_key_originality():
    assert scene_from_dict({}, "s.toml", "s").originality == 0.7
    assert scene_from_dict({"originality": False}, "s.toml", "s").originality is None
    assert scene_from_dict({"originality": 0.5}, "s.toml", "s").originality == 0.5
    with pytest.raises(ConfigError, match=r"s.toml: key 'originality' = 2"):
        scene_from_dict({"originality": 2}, "s.toml", "s")
