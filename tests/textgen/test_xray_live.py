"""Vintages and live training: kept steps load as themselves, a follow picks up new checkpoints
between poems, a corrupt one is skipped with one line and the previous one keeps playing."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from performance.protocol.worker import Close, Grant, Open, Opened, TokenOut
from performance.textgen import ModelFileError, load_model
from performance.textgen.corpus import read_corpus
from performance.textgen.lengths import LengthRule
from performance.textgen.train import TrainConfig, train
from performance.textgen.vintages import kept_steps, step_dir
from performance.worker.core import WorkerCore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real (tiny) training run that keeps steps 0, 3 and 6."""
    corpus_dir = tmp_path_factory.mktemp("corpus")
    (corpus_dir / "a.txt").write_text("the sea is calm tonight.\nthe tide is full, the moon lies fair\n" * 40)
    out = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = TrainConfig(kind="char-lstm", layers=1, hidden=16, embed=8, steps=6, seq_len=16, batch=4, eval_every=3,
                      eval_batches=1, keep_every=3, device="cpu", dropout=0.0)
    train(read_corpus(corpus_dir), out, cfg)
    return out


def test_keep_every_keeps_steps_with_their_own_cards(run_dir: Path) -> None:
    assert kept_steps(run_dir) == [0, 3, 6]
    for s in (0, 3, 6):
        card = json.loads((step_dir(run_dir, s) / "model.json").read_text())
        assert card["steps"] == s and card["name"] == f"tiny@{s}"
        assert [p[0] for p in card["val_curve"]] == [0, 3, 6][: [0, 3, 6].index(s) + 1]


def test_vintages_load_their_own_steps(run_dir: Path) -> None:
    young, old = load_model(f"{run_dir}@0"), load_model(f"{run_dir}@6")
    assert young.card["steps"] == 0 and old.card["steps"] == 6
    w0 = young.net.rnn.weight_hh_l0.detach()
    assert not torch.equal(w0, old.net.rnn.weight_hh_l0.detach())
    best = load_model(f"{run_dir}@best")
    assert best.card["name"] == "tiny"
    with pytest.raises(ModelFileError, match="step 5 was not kept.*kept steps: 0, 3, 6"):
        load_model(f"{run_dir}@5")


def test_check_names_a_missing_step_in_one_line(run_dir: Path, tmp_path: Path) -> None:
    scene = tmp_path / "v.toml"
    scene.write_text(f'layout = "columns"\nmodels = ["{run_dir}@3", "{run_dir}@4"]\n')
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "check", str(scene)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and "step 4 was not kept" in lines[0] and "0, 3, 6" in lines[0]


def _poem(core: WorkerCore, out: list, rid: int, model: str) -> tuple[Opened | None, str]:
    core.handle(Open(rid, model, 1, "", LengthRule("chars", 30)))
    core.handle(Grant(rid, (0.8,) * 30))
    core.pump()
    core.handle(Close(rid))
    opened = next((m for m in out if isinstance(m, Opened) and m.id == rid), None)
    text = "".join(m.token.text for m in out if isinstance(m, TokenOut) and m.id == rid)
    return opened, text


def test_follow_picks_up_new_checkpoints_and_skips_a_corrupt_one(run_dir: Path, tmp_path: Path, caplog) -> None:
    live = tmp_path / "live"
    live.mkdir()
    import shutil

    shutil.copytree(step_dir(run_dir, 0), step_dir(live, 0))
    out: list = []
    core = WorkerCore(out.append)
    core.follow_wait_s = 0.0
    opened, text = _poem(core, out, 1, f"{live}@follow")
    assert "step 0" in opened.checkpoint and len(text) >= 30
    shutil.copytree(step_dir(run_dir, 3), step_dir(live, 3))  # the trainer keeps a step mid-scene
    opened, _ = _poem(core, out, 2, f"{live}@follow")
    assert "step 3" in opened.checkpoint and opened.curve[-1][0] == 3
    bad = step_dir(live, 6)  # a corrupt checkpoint: the card is fine, the weights are not
    shutil.copytree(step_dir(run_dir, 6), bad)
    (bad / "model.safetensors").write_bytes(b"\x00" * 100)
    with caplog.at_level(logging.WARNING, logger="lectern.live"):
        opened, text = _poem(core, out, 3, f"{live}@follow")
        opened4, _ = _poem(core, out, 4, f"{live}@follow")
    assert "step 3" in opened.checkpoint and "step 3" in opened4.checkpoint and len(text) >= 30
    skipped = [r for r in caplog.records if "skipped step 6" in r.getMessage()]
    assert len(skipped) == 1 and "still playing 3" in skipped[0].getMessage()
