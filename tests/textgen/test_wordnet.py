"""The WordNet reader on Debian's real wordnet-base files (/usr/share/wordnet, no lexnames)."""

from __future__ import annotations

import shutil

import pytest

from performance.textgen.base import ModelFileError
from performance.textgen.wordnet import DEFAULT_DIR, WordNet

needs_wordnet = pytest.mark.skipif(not (DEFAULT_DIR / "data.noun").exists(),
                                reason="wordnet-base not installed (sudo apt-get install wordnet-base)")


@pytest.fixture(scope="module")
def wn() -> WordNet:
    if not (DEFAULT_DIR / "data.noun").exists():
        pytest.skip("wordnet-base not installed (sudo apt-get install wordnet-base)")
    w = WordNet()
    yield w
    w.close()


def test_missing_files_give_one_line_saying_how_to_install(tmp_path):
    with pytest.raises(ModelFileError) as e:
        WordNet(tmp_path)
    msg = str(e.value)
    assert "\n" not in msg
    assert "sudo apt-get install wordnet-base" in msg and str(tmp_path) in msg and "index.noun" in msg


@needs_wordnet
def test_a_partial_folder_names_what_is_missing(tmp_path):
    for name in ("index.noun", "data.noun", "index.verb", "data.verb", "index.adj", "data.adj", "index.adv"):
        shutil.copy(DEFAULT_DIR / name, tmp_path / name)
    with pytest.raises(ModelFileError, match=r"missing data\.adv\).*apt-get install wordnet-base"):
        WordNet(tmp_path)


def test_reads_debian_files_without_lexnames(wn):
    assert not (wn.folder / "lexnames").exists()  # the file nltk's reader insists on
    assert len(wn.index["n"]) > 100_000 and len(wn.index["v"]) > 10_000


def test_morphy_uses_exceptions_then_suffix_rules(wn):
    assert wn.morphy("geese", "n") == "goose"  # noun.exc
    assert wn.morphy("went", "v") == "go"  # verb.exc
    assert wn.morphy("walked", "v") == "walk" and wn.morphy("flies", "v") == "fly"
    assert wn.morphy("boxes", "n") == "box" and wn.morphy("cities", "n") == "city"
    assert wn.morphy("xyzzyq", "n") is None and wn.morphy("dog", "v") == "dog"


def test_relatives_are_synonyms_hypernyms_hyponyms_as_single_lowercase_words(wn):
    dog = wn.related("dog", "n")
    assert dog[:2] == ["canine", "canid"]  # hypernyms of the first sense come before its hyponyms
    assert "puppy" in dog and "dog" not in dog and len(dog) == 16  # capped
    walk = wn.related("walk", "v")
    assert "travel" in walk and "stumble" in walk
    for w in dog + walk + wn.related("happy", "a"):
        assert w.isalpha() and w.islower()  # no multi-word lemmas, no proper names


def test_synset_line_parsing(wn):
    lemmas, pointers = wn.synset("n", wn.index["n"]["dog"][0])
    assert lemmas == ("dog", "domestic_dog", "Canis_familiaris")
    assert ("@", "n", 2083346) in pointers  # hypernym canine.n.02


def test_proper_names(wn):
    assert wn.is_proper("adam") and wn.is_proper("satan")
    assert not wn.is_proper("dog") and not wn.is_proper("xyzzyq")
