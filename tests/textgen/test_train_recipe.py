"""The trainer (issues 21 and 18): tied embeddings that start at ln(V), every sampled position a
trained one, time budgets that end with a final evaluation at the schedule's minimum, AWD-LSTM's
regularisers acting only in training, NT-ASGD's trigger, and the QRNN's fused step."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT
from torch.nn import functional as F

from performance.textgen import load_model
from performance.textgen.awd import AWDConfig, NTTrigger, ar_tar, embedding_dropout, locked_dropout
from performance.textgen.corpus import read_corpus
from performance.textgen.fused import FusedQRNN
from performance.textgen.nets import QRNNLM, RNNLM, TransformerLM
from performance.textgen.schedule import lr_at, warmup_share
from performance.textgen.tokenizers import CharTokenizer
from performance.textgen.train import TrainConfig, train

CORPUS = ROOT / "assets/corpora/poetry_en/en.shakespeare.txt"


def _first_loss(net: torch.nn.Module, vocab: int) -> float:
    text = read_corpus(CORPUS).text
    tok = CharTokenizer.build(text)
    ids = torch.tensor(tok.encode(text)[:33 * 16]).view(16, 33) % vocab
    logits, _ = net(ids[:, :-1])
    return F.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1)).item()


@pytest.mark.parametrize("tie", [True, False])
def test_first_loss_is_ln_vocab_tied_or_not(tie):
    torch.manual_seed(0)
    v = 70
    assert abs(_first_loss(TransformerLM(v, 64, 4, 2, 32, tie=tie), v) - math.log(v)) < 0.1
    assert abs(_first_loss(RNNLM("lstm", v, 32, 32, 2, tie=tie), v) - math.log(v)) < 0.1


def test_transformer_samples_only_positions_it_trained(tmp_path):
    cfg = TrainConfig(kind="char-transformer", layers=1, hidden=32, heads=2, context=64, seq_len=16, batch=4,
                      steps=3, eval_every=10, eval_batches=1, positions="learned")
    card = train(read_corpus(CORPUS), tmp_path / "t", cfg)
    assert card["hyperparameters"]["context"] == 16
    gen = load_model(tmp_path / "t")
    assert gen.net.context == 16 and gen.net.pos.weight.shape[0] == 16
    s = gen.start(1)
    for _ in range(60):
        s.next(0.8)
        assert len(s.history) <= 16
    # an old card (context 256, trained on 128) is capped when loaded, and check warns
    import json

    c = json.loads((tmp_path / "t" / "model.json").read_text())
    c["hyperparameters"]["seq_len"] = 8
    (tmp_path / "t" / "model.json").write_text(json.dumps(c))
    assert load_model(tmp_path / "t").net.context == 8
    r = subprocess.run([sys.executable, "run.py", "check", str(tmp_path / "t")], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "warn" in r.stdout and "positions 8-15 never trained" in r.stdout


def test_time_budget_ends_with_a_final_evaluation_at_the_schedule_minimum(tmp_path):
    cfg = TrainConfig(kind="char-gru", layers=1, hidden=32, embed=16, seq_len=32, batch=8, steps=100000,
                      eval_every=25, max_minutes=0.2, lr=3e-3)
    card = train(read_corpus(CORPUS), tmp_path / "g", cfg)
    assert card["stopped_because"].startswith("time budget")
    assert card["last_eval_step"] == card["steps"]  # the final evaluation is of where it ended
    assert card["validation"]["whole_split"] and card["validation"]["windows"] > 100
    sched = card["schedule"]
    assert sched["follows"] == "time budget"
    assert sched["last_lr"] == pytest.approx(sched["min_lr"])
    # warm-up is measured against the steps the budget buys, not --steps (100000: two steps' worth)
    assert sched["warmup_share"] >= min(0.05, 200 / card["steps"]) - 1e-4
    assert card["val_loss"] is not None and (tmp_path / "g" / "model.safetensors").exists()


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_kv_cache_decode_equals_the_full_forward(positions):
    torch.manual_seed(0)
    net = TransformerLM(30, 32, 4, 2, 24, positions=positions).eval()
    x = torch.randint(0, 30, (1, 20))
    with torch.no_grad():
        full, _ = net(x)
        caches = [[] for _ in net.blocks]
        first, _ = net(x[:, :12], caches, 0)
        steps = [net(x[:, i:i + 1], caches, i)[0] for i in range(12, 20)]
    inc = torch.cat([first] + steps, dim=1)
    assert torch.allclose(inc, full, atol=1e-5)


def test_rope_is_the_default_and_old_cards_keep_their_position_table(tmp_path):
    from performance.textgen.nets import build_net

    assert TrainConfig(kind="char-transformer").positions == "rope"
    hp = {"kind": "char-transformer", "hidden": 32, "heads": 2, "layers": 1, "context": 16}
    assert build_net(hp, 10).pos is not None  # a card written before rotary positions
    rope = build_net({**hp, "positions": "rope"}, 10)
    assert rope.pos is None and not any("pos" in k for k in rope.state_dict())


def test_schedule_warms_up_then_decays_to_a_tenth():
    assert lr_at(1.0, 0.0, 0.05) < 0.05
    assert lr_at(1.0, 0.05, 0.05) == pytest.approx(1.0)
    assert lr_at(1.0, 1.0, 0.05) == pytest.approx(0.1)


def test_budgeted_warm_up_follows_the_steps_the_budget_buys():
    assert warmup_share(100000) == pytest.approx(0.002)  # a step-count run: 200 steps of 100000
    assert warmup_share(100000, 720.0) == pytest.approx(0.05)  # budget, no step time yet
    assert warmup_share(100000, 720.0, 0.8) == pytest.approx(0.05)  # 900 steps: 5% of them
    assert warmup_share(100000, 3600.0, 0.1) == pytest.approx(200 / 36000)  # long run: 200 steps
    assert warmup_share(500, 3600.0, 0.1) == pytest.approx(0.05)  # --steps ends it first


def test_weight_drop_changes_only_the_training_pass():
    torch.manual_seed(0)
    plain = RNNLM("lstm", 20, 8, 16, 2)
    awd = RNNLM("lstm", 20, 8, 16, 2, awd=AWDConfig(wdrop=0.5))
    awd.load_state_dict(plain.state_dict())
    x = torch.randint(0, 20, (3, 7))
    plain.eval(), awd.eval()
    assert torch.allclose(awd(x)[0], plain(x)[0])  # eval: the plain network
    awd.train()
    a, b = awd(x)[0], awd(x)[0]
    assert not torch.allclose(a, b)  # a new DropConnect mask each pass
    # with p = 0 the layer-by-layer training path is the nn.LSTM one exactly
    same = RNNLM("lstm", 20, 8, 16, 2, awd=AWDConfig(alpha=1.0))
    same.load_state_dict(plain.state_dict())
    same.train()
    assert torch.allclose(same(x)[0], plain(x)[0], atol=1e-6)


def test_locked_and_embedding_dropout_and_ar_tar():
    torch.manual_seed(0)
    x = torch.ones(4, 9, 6)
    y = locked_dropout(x, 0.5, True)
    assert torch.equal(y, y[:, :1].expand_as(y))  # one mask per sequence, every step alike
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(locked_dropout(x, 0.5, False), x)
    w = torch.ones(50, 3)
    d = embedding_dropout(w, 0.5, True)
    rows = d.sum(1)
    assert set(rows.tolist()) <= {0.0, 6.0} and 0 < (rows == 0).sum() < 50  # whole rows dropped
    h = torch.tensor([[[1.0], [3.0]]])
    assert ar_tar(h, h, 2.0, 0.0).item() == pytest.approx(2.0 * 5.0)
    assert ar_tar(h, h, 0.0, 1.0).item() == pytest.approx(4.0)


def test_nt_asgd_switches_at_the_right_time():
    t = NTTrigger(3)
    curve = [3.0, 2.5, 2.2, 2.1, 2.05, 2.04, 2.2, 2.3]
    fired = [t.update(v) for v in curve]
    # at index 6 (2.2): history [3.0 .. 2.04], best before the last 3 is min(3.0, 2.5, 2.2) = 2.2:
    # 2.2 > 2.2 is false; at index 7 (2.3): min(3.0, 2.5, 2.2, 2.1) = 2.1 < 2.3: fire
    assert fired == [False] * 7 + [True]
    assert t.fired_at == 7 and not t.update(9.0)  # once only
    assert not any(NTTrigger(0).update(v) for v in curve)


def test_qrnn_step_equals_full_sequence_forward():
    torch.manual_seed(0)
    net = QRNNLM(30, 12, 24, 3, tie=False).eval()
    x = torch.randint(0, 30, (2, 11))
    with torch.no_grad():
        full, _ = net(x)
        first, st = net(x[:, :5])
        rest, _ = net(x[:, 5:], st)
    assert torch.allclose(torch.cat([first, rest], 1), full, atol=1e-5)
    fused = FusedQRNN.from_module(net)
    state = fused.zero_state(2)
    steps = np.stack([fused.step(x[:, t].numpy(), state) for t in range(11)], 1)
    assert np.allclose(steps, full.numpy(), atol=1e-4)


def test_awd_qrnn_trains_saves_and_samples(tmp_path):
    cfg = TrainConfig(kind="char-qrnn", layers=2, hidden=32, embed=16, seq_len=32, batch=8, steps=20,
                      eval_every=10, wdrop=0.3, dropoute=0.1, tie=True)
    card = train(read_corpus(CORPUS), tmp_path / "q", cfg)
    assert card["hyperparameters"]["awd"]["wdrop"] == 0.3 and card["averaging"]["nt_asgd"] == 5
    gen = load_model(tmp_path / "q")
    s = gen.start(3)
    text = "".join(s.next(0.8).text for _ in range(40))
    s2 = gen.start(3)
    assert text == "".join(s2.next(0.8).text for _ in range(40)) and len(text) >= 40
    # its bench case, limits included (it crashed on the QRNN's two lookup tables)
    from performance.model_bench import bench_neural

    cases = bench_neural(gen, [1, 4], seconds=0.05, repeats=1, floors=(10.0, 10.0))
    assert [c["streams"] for c in cases] == [1, 4]
    assert all(c["ratio"] > 0 and c["weight_bytes_per_token"] > 0 and c["flops_per_token"] > 0 for c in cases)
