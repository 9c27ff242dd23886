"""Neural models on CPU, small and fast: training lowers loss, checkpoints round-trip, sampling is
seeded, temperature behaves, prompts with unknown characters never crash, bad files say so."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import ROOT

from performance.textgen import load_model
from performance.textgen.base import ModelFileError
from performance.textgen.corpus import read_corpus
from performance.textgen.train import TrainConfig, train

CORPUS = ROOT / "assets/corpora/poetry_en/en.shakespeare.txt"


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    p = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    p.write_text(CORPUS.read_text()[:40000])
    return read_corpus(p)


def tiny(kind: str, out, corpus, steps: int = 60, **kw) -> dict:
    cfg = TrainConfig(kind=kind, layers=2, hidden=48, embed=16, heads=2, context=64, seq_len=48, batch=16, steps=steps,
                      lr=1e-2, dropout=0.0, eval_every=20, eval_batches=2, save_every=20, patience=100, seed=1,
                      device="cpu", **kw)
    return train(corpus, out, cfg)


@pytest.fixture(scope="module")
def lstm_dir(tmp_path_factory, tiny_corpus):
    out = tmp_path_factory.mktemp("m") / "lstm"
    tiny("char-lstm", out, tiny_corpus, steps=80)
    return out


@pytest.mark.parametrize("kind", ["char-lstm", "char-gru", "word-gru", "char-transformer"])
def test_training_lowers_the_loss_and_writes_a_card(tmp_path, tiny_corpus, kind):
    card = tiny(kind, tmp_path / kind, tiny_corpus, steps=60)
    hist = json.loads((tmp_path / kind / "train_state.json").read_text())["history"]
    first, last = hist["train"][0][1], hist["train"][-1][1]
    assert last < first - 0.3, (first, last)
    for key in ("kind", "hyperparameters", "vocab", "corpus", "steps", "train_loss", "val_loss", "training_seconds",
                "device", "date", "engine_version", "samples"):
        assert key in card
    assert card["corpus"]["sha256"] == tiny_corpus.sha256 and card["device"] == "cpu"
    assert set(card["samples"]) == {"0.3", "0.7", "1.1"}
    assert (tmp_path / kind / "loss.png").stat().st_size > 1000
    gen = load_model(tmp_path / kind)
    assert gen.word_tokens == kind.startswith("word")
    s = gen.start(1)
    assert all(0 < s.next(0.8).p <= 1 for _ in range(20))


def test_save_load_identical_logits_and_fused_matches_module(lstm_dir):
    a, b = load_model(lstm_dir), load_model(lstm_dir)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        la, _ = a.net(ids)
        lb, _ = b.net(ids)
    assert torch.equal(la, lb)
    state = a.fused.zero_state(1)
    for i in ids[0].tolist():
        out = a.fused.step(np.array([i]), state)
    assert np.abs(out[0] - la[0, -1].numpy()).max() < 1e-4


def test_same_seed_same_text_alone_or_batched(lstm_dir):
    gen = load_model(lstm_dir)

    def text(seed):
        s = gen.start(seed)
        return "".join(s.next(0.9).text for _ in range(200))

    assert text(5) == text(5) and text(5) != text(6)
    batch = gen.start_batch([4, 5, 6])
    cols = ["", "", ""]
    for _ in range(200):
        for i, tok in enumerate(batch.next([0.9, 0.9, 0.9])):
            cols[i] += tok.text
    assert cols[1] == text(5)


def test_temperature_zero_is_argmax(lstm_dir):
    gen = load_model(lstm_dir)
    s = gen.start(1)
    state = gen.fused.zero_state(1)
    last = gen.tok.index["\n"]
    for _ in range(30):
        logits = gen.fused.step(np.array([last]), state)[0]
        tok = s.next(0.0)
        last = int(np.argmax(logits))
        assert tok.text == gen.tok.vocab[last]


def test_higher_temperature_higher_entropy(lstm_dir):
    gen = load_model(lstm_dir)

    def entropy(t):
        s = gen.start(3)
        c = Counter(s.next(t).text for _ in range(1500))
        n = sum(c.values())
        return -sum(v / n * math.log(v / n) for v in c.values())

    assert entropy(0.3) < entropy(1.0) < entropy(1.6)


def test_prompt_with_unknown_characters_warns_once_and_works(lstm_dir):
    gen = load_model(lstm_dir)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = gen.start(1, "Zebra ☃ ẞ 北 — “quoted” ünder")
        text = "".join(s.next(0.8).text for _ in range(40))
    assert len(w) == 1 and "vocabulary" in str(w[0].message)
    assert text.startswith("")  # generated without error


def test_corrupt_and_truncated_checkpoints_name_the_file(lstm_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(lstm_dir, bad)
    weights = bad / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as e:
        load_model(bad)
    assert str(weights) in str(e.value) and "\n" not in str(e.value)
    weights.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="model.safetensors"):
        load_model(bad)
    weights.write_bytes(data)
    card = json.loads((bad / "model.json").read_text())
    card["hyperparameters"]["hidden"] = 64
    (bad / "model.json").write_text(json.dumps(card))
    with pytest.raises(ModelFileError, match="shape|match"):
        load_model(bad)
    (bad / "model.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="model.json"):
        load_model(bad)


def test_resume_continues_the_step_count(tmp_path, tiny_corpus):
    out = tmp_path / "r"
    tiny("char-gru", out, tiny_corpus, steps=40)
    assert json.loads((out / "model.json").read_text())["steps"] == 40
    cfg = TrainConfig(kind="char-gru", layers=2, hidden=48, embed=16, seq_len=48, batch=16, steps=70, lr=1e-2,
                      eval_every=20, eval_batches=2, save_every=20, patience=100, device="cpu")
    card = train(tiny_corpus, out, cfg, resume=True)
    assert card["steps"] == 70


def run(*args, timeout=120):
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_sample_cli_is_deterministic_and_bench_json_has_the_contract_keys(lstm_dir):
    a = run("sample", str(lstm_dir), "--words", "20", "--seed", "7", "--temperature", "0.7")
    b = run("sample", str(lstm_dir), "--words", "20", "--seed", "7", "--temperature", "0.7")
    assert a.returncode == 0 and a.stdout == b.stdout and len(re.findall(r"[^\W\d_]+", a.stdout)) >= 20
    r = run("bench", str(lstm_dir), "--json", "--seconds", "0.1", "--repeats", "2")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"device", "threads", "cases"} and out["device"] == "cpu"
    tok_cases = [c for c in out["cases"] if "engine_tok_s" in c]
    assert [c["streams"] for c in tok_cases] == [1, 16]
    for c in tok_cases:
        assert {"model", "kind", "streams", "engine_tok_s", "baseline_tok_s", "ratio"} <= set(c)
        assert c["engine_tok_s"] > 0 and c["baseline_tok_s"] > 0
    bad = run("sample", "no-such-model")
    assert bad.returncode == 2 and "no-such-model" in bad.stderr
