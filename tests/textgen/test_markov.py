"""The Markov chain: exact choices on a hand-made corpus, the shipped model, its files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from safetensors.numpy import load_file, save_file

import performance
from performance.textgen import load_model
from performance.textgen.base import ModelFileError
from performance.textgen.corpus import read_corpus
from performance.textgen.markov import bench_case, train_markov
from performance.textgen.tokenizers import WordTokenizer

TINY = "the cat sat.\nthe cat ran.\nthe dog sat.\n"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny")
    (d / "tiny.txt").write_text(TINY)
    train_markov(read_corpus(d / "tiny.txt"), d / "m1", order=1, seed=1)
    train_markov(read_corpus(d / "tiny.txt"), d / "m3", order=3, seed=1)
    return d


@pytest.fixture(scope="module")
def shipped():
    return load_model("markov")


def tokens(stream, n: int, temperature: float, **kw) -> list:
    return [stream.next(temperature, **kw) for _ in range(n)]


def test_temperature_zero_takes_the_likeliest_word_with_ties_to_the_first(tiny_dir):
    gen = load_model(tiny_dir / "m1")
    got = [(t.text, round(t.p, 4)) for t in tokens(gen.start(5), 7, 0.0)]
    # after "the": cat 2, dog 1; after "cat": ran 1, sat 1 -> "ran" (first in vocabulary order)
    assert got == [("the", 1.0), (" cat", 0.6667), (" ran", 0.5), (".", 1.0), ("\n", 1.0), ("the", 1.0), (" cat", 0.6667)]
    assert [t.text for t in tokens(gen.start(99), 7, 0.0)] == [g[0] for g in got]  # the seed does not matter


def test_temperature_reshapes_transition_probabilities(tiny_dir):
    gen = load_model(tiny_dir / "m1")
    seen: dict[str, set] = {}
    for seed in range(40):
        toks = tokens(gen.start(seed), 2, 0.5)
        seen.setdefault(toks[1].text, set()).add(round(toks[1].p, 6))
    # p ∝ count^(1/T): cat 2² = 4, dog 1² = 1 -> 0.8 / 0.2 (untempered they would be 2/3, 1/3)
    assert seen == {" cat": {0.8}, " dog": {0.2}}
    one = {round(tokens(gen.start(s), 2, 1.0)[1].p, 6) for s in range(40)}
    assert one == {round(2 / 3, 6), round(1 / 3, 6)}


def test_backs_off_instead_of_dead_ending(tiny_dir):
    gen = load_model(tiny_dir / "m3")
    assert gen.order == 3
    s = gen.start(1, "dog ran")  # "dog ran" never occurs: order 3 and 2 miss, order 1 knows "ran"
    assert [t.text for t in tokens(s, 2, 1.0)] == ["dog", " ran"]  # the prompt is echoed first
    nxt = s.next(1.0)
    assert (nxt.text, nxt.p) == (".", 1.0)
    assert len("".join(t.text for t in tokens(s, 300, 1.5))) > 300  # never stops


def test_unknown_prompt_words_are_dropped_with_one_warning(tiny_dir):
    gen = load_model(tiny_dir / "m1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = gen.start(1, "the zebra quagga dog")
    assert len(caught) == 1 and "zebra" in str(caught[0].message) and "quagga" in str(caught[0].message)
    assert [t.text for t in tokens(s, 2, 0.0)] == ["the", " dog"]


def test_shipped_model_at_temperature_zero_is_deterministic_and_pairs_occur_in_the_corpus(shipped):
    text = "".join(t.text for t in tokens(shipped.start(1), 150, 0.0))
    assert text == "".join(t.text for t in tokens(shipped.start(2), 150, 0.0))
    corpus = WordTokenizer.split(read_corpus(ROOT / "assets/corpora/poetry_en").text)
    pairs = set(zip(corpus, corpus[1:], strict=False))
    for seed, temperature in ((1, 0.0), (2, 0.6), (3, 1.0), (4, 1.6)):
        toks = WordTokenizer.split("".join(t.text for t in tokens(shipped.start(seed), 400, temperature)))
        missing = [p for p in zip(toks, toks[1:], strict=False) if p not in pairs]
        assert not missing, (seed, temperature, missing[:5])


def test_seeded_streams_alone_or_batched(shipped):
    a = [t.text for t in tokens(shipped.start(11), 120, 0.9)]
    assert a == [t.text for t in tokens(shipped.start(11), 120, 0.9)]
    assert a != [t.text for t in tokens(shipped.start(12), 120, 0.9)]
    batch = shipped.start_batch([11, 12])
    rows = [batch.next([0.9, 0.9]) for _ in range(120)]
    assert [r[0].text for r in rows] == a
    assert all(0 < t.p <= 1 for r in rows for t in r)


def test_top_k_one_is_argmax_and_top_p_keeps_the_nucleus(shipped):
    argmax = [t.text for t in tokens(shipped.start(3), 80, 0.0)]
    assert [t.text for t in tokens(shipped.start(3), 80, 1.0, top_k=1)] == argmax
    # a tiny nucleus keeps only the likeliest token too (p renormalised to 1)
    nucleus = tokens(shipped.start(3), 80, 1.0, top_p=1e-6)
    assert [t.text for t in nucleus] == argmax and all(t.p == 1.0 for t in nucleus)


def test_text_joins_into_lines_without_space_before_punctuation(shipped):
    text = "".join(t.text for t in tokens(shipped.start(8), 300, 0.8))
    assert "\n\n\n" not in text and not text.startswith("\n")
    assert " ," not in text and " ." not in text and " \n" not in text and "\n " not in text


def test_save_load_round_trip_and_card(tiny_dir, tmp_path):
    corpus = read_corpus(ROOT / "assets/corpora/poetry_en/en.byron.sennacherib.txt")
    train_markov(corpus, tmp_path / "m", order=2, seed=4)
    card = json.loads((tmp_path / "m" / "model.json").read_text())
    assert card["kind"] == "markov" and card["order"] == 2 and card["vocab_size"] == len(card["vocab"])
    assert card["corpus"] == corpus.card() and card["engine_version"] == performance.__version__
    assert set(card["samples"]) == {"0.3", "0.7", "1.1"} and card["training_seconds"] >= 0 and card["date"]
    arrays = load_file(str(tmp_path / "m" / "model.safetensors"))  # plain tensors: nothing to execute
    assert all(a.dtype == np.int32 for a in arrays.values())
    first = [(t.text, t.p) for t in tokens(load_model(tmp_path / "m").start(5), 100, 0.7)]
    assert first == [(t.text, t.p) for t in tokens(load_model(tmp_path / "m").start(5), 100, 0.7)]
    assert card["samples"]["0.7"] == "".join(t.text for t in tokens(load_model(tmp_path / "m").start(4), 60, 0.7))
    with pytest.raises(ModelFileError, match="order 4: allowed 1, 2 or 3"):
        train_markov(corpus, tmp_path / "bad", order=4, seed=1)


def test_corrupt_files_name_the_file(tiny_dir, tmp_path):
    import shutil

    shutil.copytree(tiny_dir / "m3", tmp_path / "m")
    weights, card_path = tmp_path / "m" / "model.safetensors", tmp_path / "m" / "model.json"
    good = weights.read_bytes()
    weights.write_bytes(b"garbage" * 10)
    with pytest.raises(ModelFileError, match=r"model\.safetensors: unreadable"):
        load_model(tmp_path / "m")
    arrays = {k: v.copy() for k, v in load_file(str(tiny_dir / "m3" / "model.safetensors")).items()}
    arrays["next2"][0] = 10_000  # a token the vocabulary does not have
    save_file(arrays, str(weights))
    with pytest.raises(ModelFileError, match=r"model\.safetensors: .*outside the vocabulary"):
        load_model(tmp_path / "m")
    weights.write_bytes(good)
    card = json.loads(card_path.read_text())
    card["order"] = 7
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match=r"model\.json: key 'order' is 7"):
        load_model(tmp_path / "m")
    weights.unlink()
    card["order"] = 3
    card_path.write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match=r"model\.safetensors: missing"):
        load_model(tmp_path / "m")


def test_shipped_folder_is_small_and_describes_itself():
    folder = ROOT / "models/markov"
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5_000_000
    card = json.loads((folder / "model.json").read_text())
    assert card["kind"] == "markov" and card["order"] == 2 and card["corpus"]["name"] == "poetry_en"
    assert card["corpus"]["sha256"] == read_corpus(ROOT / "assets/corpora/poetry_en").sha256


def test_bench_case_has_the_contract_keys(tiny_dir):
    case = bench_case(load_model(tiny_dir / "m3"), 0.05)
    assert set(case) == {"model", "kind", "streams", "engine_tok_s", "baseline_tok_s", "ratio", "guarded_tok_s"}
    assert case["kind"] == "markov" and case["streams"] == 1 and case["model"] == "m3"
    assert case["engine_tok_s"] > 0 and case["baseline_tok_s"] > 0
    assert case["ratio"] == pytest.approx(case["engine_tok_s"] / case["baseline_tok_s"], rel=0.01)
