"""The char-wavenet kind: queued sampling equals the full net, same seed same text, training keeps
vintages and resumes, and an injected explosion kills the run but keeps its survivors."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from performance.model_commands import register_train, run_train
from performance.textgen import load_model
from performance.textgen.tokenizers import CharTokenizer
from performance.textgen.vintages import kept_steps
from performance.textgen.wavenet import Queues, WaveNetGenerator, WaveNetLM, dilations, receptive_field

TEXT = "the sea is calm tonight,\nthe tide is full, the moon lies fair\nupon the straits.\n" * 40
TINY = ["--wn-residual", "8", "--wn-dilation-channels", "4", "--wn-skip", "8", "--wn-max-dilation", "4",
        "--wn-cycles", "2", "--batch", "4", "--seq-len", "32", "--lr", "3e-3"]


def _gen(seed: int = 0) -> WaveNetGenerator:
    torch.manual_seed(seed)
    tok = CharTokenizer.build(TEXT)
    net = WaveNetLM(len(tok.vocab), residual=8, dilation_channels=4, skip=8, max_dilation=8, cycles=2)
    for p in net.parameters():  # livelier than the init: the draws depend on the logits
        p.data.mul_(3.0)
    return WaveNetGenerator("tiny", {"kind": "char-wavenet"}, net, tok)


def test_dilation_cycle():
    assert dilations(8, 2) == [1, 2, 4, 8, 1, 2, 4, 8]
    assert receptive_field(8, 2) == 31


def test_queues_equal_the_whole_net():
    gen = _gen()
    ids = torch.tensor([gen.tok.encode(TEXT[:100])])  # past the receptive field (31)
    with torch.no_grad():
        ref = gen.net(ids)[0][0].numpy()
    q = Queues(gen.net)
    state = q.zero_state(1)
    got = np.stack([q.step(np.array([i]), state)[0] for i in ids[0].tolist()])
    assert np.abs(got - ref).max() < 1e-4


@pytest.mark.parametrize("temperature,top_k,top_p", [(0.8, 0, 1.0), (0.0, 0, 1.0), (1.0, 5, 0.9)])
def test_same_seed_same_text_queued_and_naive(temperature, top_k, top_p):
    gen = _gen()
    a, b = gen.start(11, "the"), gen.start_naive(11, "the")
    ta = "".join(a.next(temperature, top_k, top_p).text for _ in range(120))
    tb = "".join(b.next(temperature, top_k, top_p).text for _ in range(120))
    assert ta == tb and ta.startswith("the")


def test_batch_writes_what_each_stream_writes_alone():
    gen = _gen()
    seeds, prompts = [1, 2, 3], ["", "sea", "the tide"]
    batch = gen.start_batch(seeds, prompts)
    rows = [batch.next([0.9, 0.7, 1.1]) for _ in range(60)]
    for b, (seed, prompt, t) in enumerate(zip(seeds, prompts, [0.9, 0.7, 1.1], strict=True)):
        s = gen.start(seed, prompt)
        alone = "".join(s.next(t).text for _ in range(60))
        assert "".join(r[b].text for r in rows) == alone


def _train(tmp_path, out, *extra) -> int:
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    parser = argparse.ArgumentParser()
    register_train(parser.add_subparsers())
    args = parser.parse_args(["train", str(corpus), "--kind", "char-wavenet", "--out", str(out), *TINY, *extra])
    return run_train(args)


def test_train_keeps_vintages_and_resumes(tmp_path):
    out = tmp_path / "wn"
    assert _train(tmp_path, out, "--steps", "12", "--eval-every", "6", "--keep-every", "6") == 0
    card = json.loads((out / "model.json").read_text())
    assert card["kind"] == "char-wavenet" and card["died"] is None and card["steps"] == 12
    assert card["validation"]["window"] == 128 and card["val_loss"] < 4.0
    assert card["loss_curve"]["grad_norm"] and card["loss_curve"]["val"]
    assert kept_steps(out) == [0, 6, 12]
    young = load_model(f"{out}@6")
    assert young.card["steps"] == 6 and young.kind == "char-wavenet"
    assert _train(tmp_path, out, "--steps", "18", "--eval-every", "6", "--keep-every", "6", "--resume") == 0
    assert json.loads((out / "model.json").read_text())["steps"] == 18 and kept_steps(out)[-1] == 18


@pytest.mark.parametrize("explode_at,last_good", [(14, 12), (12, 8)])
def test_an_explosion_kills_the_run_and_keeps_the_last_good_vintage(tmp_path, monkeypatch, explode_at, last_good):
    monkeypatch.setenv("LECTERN_FAULTS", "wavenet_explode")
    monkeypatch.setenv("LECTERN_WAVENET_EXPLODE_AT", str(explode_at))
    out = tmp_path / "wn"
    assert _train(tmp_path, out, "--steps", "40", "--eval-every", "4", "--keep-every", "4") == 0
    card = json.loads((out / "model.json").read_text())
    died = card["died"]
    assert died is not None and died["step"] == explode_at + 1
    assert died["last_kept_step"] == last_good and card["steps"] == explode_at + 1
    assert card["stopped_because"].startswith(f"died at step {explode_at + 1}")
    assert kept_steps(out)[-1] == last_good  # the vintage with the exploded weights is gone
    survivor = load_model(f"{out}@{last_good}")  # the survivor still writes
    s = survivor.start(3)
    assert "".join(s.next(0.8).text for _ in range(50))
    assert load_model(out).card["val_loss"] is not None  # the best weights, from before the death


def test_bench_case_compares_queued_with_naive():
    from performance.textgen.wavenet_bench import bench_case

    case = bench_case(_gen(), 0.05)
    assert case["same_text"] and case["ratio"] > 0 and case["streams_16_tok_s"] > 0
    assert {"engine_tok_s", "baseline_tok_s", "streams"} <= set(case)
