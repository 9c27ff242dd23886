"""The CPU sampler's fast paths: reduced-precision weights stay close to fp32, vectorized
sampling draws what the per-row sampler draws, batched streams write what they write alone, the
thread count is set and checked, and the bench reports medians, floors and the poem flick."""

from __future__ import annotations

import json
import string
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from performance.model_bench import bench_flick
from performance.textgen.base import ModelFileError
from performance.textgen.fused import Dense
from performance.textgen.lengths import _WORD, LengthCounter, LengthRule
from performance.textgen.nets import RNNLM
from performance.textgen.neural import NeuralGenerator, sample_row, sample_rows
from performance.textgen.quality import fused_loss
from performance.textgen.threads import ThreadsError, sampler_threads, use_sampler_threads
from performance.textgen.tokenizers import make_tokenizer

VOCAB = ["\n", " ", *string.ascii_lowercase, ".", ","]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The sampler's thread count, as the worker and the bench set it."""
    before = torch.get_num_threads()
    use_sampler_threads(1)
    yield
    torch.set_num_threads(before)


def random_gen(cell: str, precision: str | None = None, card: dict | None = None, hidden: int = 96) -> NeuralGenerator:
    """Random weights; hidden >= 320 makes the recurrent matrices big enough to be packed."""
    torch.manual_seed(3)
    net = RNNLM(cell, len(VOCAB), 16, hidden, 2)
    for p in net.parameters():  # a peaked distribution, like a trained model's
        p.data.mul_(4.0)
    kind = f"char-{cell}"
    return NeuralGenerator("rand", kind, card or {"kind": kind}, net, make_tokenizer(kind, VOCAB), precision=precision)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("precision,tol", [("fp16", 0.05), ("int8", 0.5)])
def test_reduced_precision_logits_stay_close_to_fp32(cell, precision, tol):
    ref, low = random_gen(cell, hidden=320), random_gen(cell, precision, hidden=320)
    assert low.fused.weight_bytes < ref.fused.weight_bytes
    s_ref, s_low = ref.fused.zero_state(1), low.fused.zero_state(1)
    for i in [3, 7, 1, 9, 12, 0, 5]:
        a = ref.fused.step(np.array([i]), s_ref)
        b = low.fused.step(np.array([i]), s_low)
    scale = np.abs(a).max()
    assert np.abs(a - b).max() < tol * scale


def test_fp32_fused_step_matches_the_module():
    gen = random_gen("gru")
    ids = torch.tensor([[2, 4, 6, 8, 10]])
    with torch.no_grad():
        ref, _ = gen.net(ids)
    state = gen.fused.zero_state(1)
    for i in ids[0].tolist():
        out = gen.fused.step(np.array([i]), state)
    assert np.abs(out[0] - ref[0, -1].numpy()).max() < 1e-3


def test_vectorized_sampling_draws_what_the_row_sampler_draws():
    logits = np.random.default_rng(0).standard_normal((8, 50)).astype(np.float32) * 3
    temps = [0.3, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 0.7]
    for seed in range(20):
        rows = sample_rows(logits, temps, 0, 1.0, [np.random.default_rng(seed + b) for b in range(8)])
        one = [sample_row(logits[b], temps[b], 0, 1.0, np.random.default_rng(seed + b)) for b in range(8)]
        assert [i for i, _ in rows] == [i for i, _ in one]
        assert np.allclose([p for _, p in rows], [p for _, p in one])
    # temperature 0 and top-k fall back to the row sampler: argmax
    rows = sample_rows(logits, [0.0] * 8, 0, 1.0, [np.random.default_rng(b) for b in range(8)])
    assert [i for i, _ in rows] == logits.argmax(axis=1).tolist()


def test_int8_rows_are_exactly_the_same_alone_or_batched():
    rng = np.random.default_rng(0)
    d = Dense(rng.standard_normal((640, 512)).astype(np.float32), rng.standard_normal(512).astype(np.float32), "int8")
    x = rng.standard_normal((5, 640)).astype(np.float32) * np.array([[0.01], [1], [30], [0], [2]], np.float32)
    together = d(x)
    for b in range(5):
        assert np.array_equal(d(x[b:b + 1])[0], together[b])


@pytest.mark.parametrize("cell,hidden", [("lstm", 320), ("gru", 320), ("lstm", 328), ("gru", 328)])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_same_text_alone_or_batched(precision, cell, hidden):
    # 320: torch's SIMD sigmoid path; 328 (not a multiple of 16): numpy's
    gen = random_gen(cell, precision, hidden=hidden)

    def alone(seed):
        s = gen.start(seed)
        return "".join(s.next(0.9).text for _ in range(150))

    batch = gen.start_batch([4, 5, 6])
    cols = ["", "", ""]
    for _ in range(150):
        for i, tok in enumerate(batch.next([0.9, 0.9, 0.9])):
            cols[i] += tok.text
    assert cols == [alone(4), alone(5), alone(6)]


def test_precision_from_card_and_bad_values_name_the_key():
    assert random_gen("gru", card={"kind": "char-gru", "cpu_precision": "fp16"}).fused.precision == "fp16"
    assert random_gen("gru", "fp16", hidden=320).fused.xh[0].precision == "fp16"
    assert random_gen("gru", "fp16").fused.head.precision == "fp32"  # too small to pay
    with pytest.raises(ModelFileError, match="cpu_precision is 'bf16'; allowed: fp32, fp16, int8"):
        random_gen("gru", card={"kind": "char-gru", "cpu_precision": "bf16"})
    with pytest.raises(ValueError, match="allowed"):
        Dense(np.zeros((4, 4), np.float32), None, "int4")


def test_sampler_threads_from_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("LECTERN_SAMPLER_THREADS", "1")
        assert use_sampler_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("LECTERN_SAMPLER_THREADS", "zero")
        with pytest.raises(ThreadsError, match="LECTERN_SAMPLER_THREADS='zero'; must be an integer >= 1"):
            sampler_threads()
    finally:
        torch.set_num_threads(before)


def test_fused_loss_is_the_modules_cross_entropy():
    gen = random_gen("lstm")
    text = "the quick brown fox jumps over the lazy dog. " * 8
    ids = gen.tok.encode(text)
    rows = 4
    n = (len(ids) - 1) // rows
    seq = torch.tensor(ids[: rows * n + 1])
    x = torch.stack([seq[r * n:(r + 1) * n] for r in range(rows)])
    y = torch.stack([seq[r * n + 1:(r + 1) * n + 1] for r in range(rows)])
    with torch.no_grad():
        logits, _ = gen.net(x)
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, len(VOCAB)), y.reshape(-1)).item()
    # char model: one token per char, so nats/char = mean cross-entropy
    assert fused_loss(gen.fused, ids, len(ids), rows=rows) == pytest.approx(ce, rel=1e-3)


def test_bench_json_keeps_the_contract_and_adds_medians_floors_and_the_flick():
    r = subprocess.run([sys.executable, "run.py", "bench", "default", "--json", "--seconds", "0.05", "--repeats", "2",
                        "--no-flick"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert {"device", "threads", "cases"} <= set(out) and out["threads"] >= 1
    tok = [c for c in out["cases"] if "engine_tok_s" in c]
    assert [c["streams"] for c in tok] == [1, 16]
    for c in tok:
        assert {"model", "kind", "streams", "engine_tok_s", "baseline_tok_s", "ratio"} <= set(c)
        lo, hi = c["ratio_spread"]
        assert lo <= c["ratio"] <= hi and c["repeats"] == 2
        assert c["weight_bytes_per_token"] > 0 and c["copy_gb_s"] > 0 and 0 < c["floor_fraction"]
    assert tok[1]["weight_bytes_per_token"] < tok[0]["weight_bytes_per_token"]  # shared by 16 streams
    assert not [c for c in out["cases"] if c.get("case") == "flick"]


def test_flick_case_writes_every_poem_through_the_worker():
    case = bench_flick(random_gen("gru", "fp16"), repeats=2, ahead=4, words=30)
    assert case["case"] == "flick" and case["streams"] == 4 and case["words_per_poem"] == 30
    assert case["poems_per_s"] > 0 and case["tok_s"] > 4 * 30 * case["poems_per_s"] / 4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab’' \n.-1é", min_size=1, max_size=4), min_size=1, max_size=60))
def test_incremental_word_count_is_the_whole_texts_count(pieces):
    counter = LengthCounter(LengthRule("words", 10_000), word_tokens=False)
    for piece in pieces:
        counter.feed(piece)
        assert counter.words() == len(_WORD.findall(counter.text))


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_no_token_is_drawn_more_than_max_run_times_running(temperature):
    from performance.textgen.neural import MAX_RUN, step_streams

    gen = random_gen("gru")
    with torch.no_grad():  # a model that all but always says "a": the attractor a word GRU fell into
        gen.net.head.bias.zero_()
        gen.net.head.bias[VOCAB.index("a")] = 40.0
    gen.set_precision("fp32")
    alone = gen.start(1)
    texts = ["".join(alone.next(temperature).text for _ in range(200))]
    batch = gen.start_batch([1, 2])
    cols = ["", ""]
    for _ in range(200):
        for i, tok in enumerate(batch.next([temperature] * 2)):
            cols[i] += tok.text
    worker = [gen.start(1), gen.start(2)]
    wcols = ["", ""]
    for _ in range(200):
        for i, tok in enumerate(step_streams(worker, [temperature] * 2)):
            wcols[i] += tok.text
    for text in texts + cols + wcols:
        assert "a" * MAX_RUN in text and "a" * (MAX_RUN + 1) not in text
    assert cols[0] == texts[0] == wcols[0]  # alone, batched and in the worker alike


def test_transformer_streams_keep_the_same_repeat_guard():
    from performance.textgen.nets import TransformerLM
    from performance.textgen.neural import MAX_RUN

    torch.manual_seed(0)
    net = TransformerLM(len(VOCAB), 32, 4, 1, 32)
    with torch.no_grad():
        net.head.weight.zero_()
        net.ln.bias.fill_(1.0)
        net.head.weight[VOCAB.index("a")] = 40.0
    gen = NeuralGenerator("t", "char-transformer", {"kind": "char-transformer"}, net,
                          make_tokenizer("char-transformer", VOCAB))
    s = gen.start(1)
    text = "".join(s.next(0.7).text for _ in range(100))
    assert "a" * MAX_RUN in text and "a" * (MAX_RUN + 1) not in text
