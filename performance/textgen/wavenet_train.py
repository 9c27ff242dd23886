"""Training the char-wavenet kind, with the neural trainer's habits and the seeds' failure kept.

The split, the validation (the last 10% of the corpus in consecutive windows of 128 characters,
each read from a blank past, as train.py scores every kind), the schedule, the checkpoint files
and the vintages are the neural trainer's. What is the WaveNet's own: every step's gradient norm
is logged (before clipping), and a loss that is not finite or jumps past `explode` times its
running mean ends the run there — "died" — without saving the broken weights: the best weights,
the training state of the last save and the vintages kept before it stay, and the card says at
which step and with what loss it died, so a setlist can still play its survivors.

Fault `wavenet_explode` (LECTERN_FAULTS, performance/faults.py) multiplies the learning rate by
10^6 for the step named by LECTERN_WAVENET_EXPLODE_AT (default 5): the next loss explodes.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch.nn import functional as F

from performance import __version__, faults
from performance.textgen.base import ModelFileError
from performance.textgen.cards import read_card, write_card
from performance.textgen.checkpoint import load_train_state, load_weights, save_train_state, save_weights
from performance.textgen.corpus import Corpus
from performance.textgen.schedule import lr_at, progress, warmup_share
from performance.textgen.tokenizers import CharTokenizer
from performance.textgen.train import _optimizer, _Progress, pick_device, plot_loss
from performance.textgen.vintages import keep_checkpoint, kept_steps, step_dir
from performance.textgen.wavenet import KIND, SIZES, WaveNetGenerator, build_wavenet, receptive_field

VAL_WINDOW = 128  # train.py's default --seq-len: the windows every kind's val_loss is scored on
FAULT = "wavenet_explode"
FAULT_STEP_ENV = "LECTERN_WAVENET_EXPLODE_AT"
CALM_STEPS = 10  # steps of a run before the running loss is trusted as the bar for an explosion


@dataclass
class WaveConfig:
    residual: int = SIZES["residual"]
    dilation_channels: int = SIZES["dilation_channels"]
    skip: int = SIZES["skip"]
    max_dilation: int = SIZES["max_dilation"]
    cycles: int = SIZES["cycles"]
    seq_len: int = 256
    batch: int = 16
    steps: int = 3000
    lr: float = 2e-3
    clip: float = 1.0
    explode: float = 3.0  # a loss above this many times the running loss kills the run
    eval_every: int = 100
    save_every: int = 500
    keep_every: int = 0
    patience: int = 8
    seed: int = 1
    max_minutes: float | None = None
    device: str = "auto"
    weight_decay: float | None = None
    kind: str = KIND


class _Run:
    """One training run into out_dir (fresh or resumed)."""

    def __init__(self, corpus: Corpus, out_dir: Path, cfg: WaveConfig, resume: bool) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.corpus, self.out, self.cfg = corpus, out_dir, cfg
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        vocab = None
        if resume:
            old = read_card(out_dir)
            vocab = old["vocab"]
            for k in SIZES:
                setattr(cfg, k, int(old["hyperparameters"][k]))
        self.tok = CharTokenizer(vocab) if vocab else CharTokenizer.build(corpus.text)
        ids = torch.tensor(self.tok.encode(corpus.text), dtype=torch.long)
        split = int(len(ids) * 0.9)  # train.py's split
        self.train_ids, self.val_ids = ids[:split], ids[split:]
        self.hp = {k: v for k, v in asdict(cfg).items() if k not in ("device", "max_minutes")}
        self.hp["receptive_field"] = receptive_field(cfg.max_dilation, cfg.cycles)
        self.net = build_wavenet(self.hp, len(self.tok.vocab)).to(self.device)
        self.opt = _optimizer(self.net, SimpleNamespace(weight_decay=cfg.weight_decay or 0.0, kind=KIND, lr=cfg.lr))
        self.step, self.best, self.elapsed0 = 0, float("inf"), 0.0
        self.history: dict = {"train": [], "val": [], "grad_norm": []}
        if resume:
            meta = load_train_state(out_dir, self.net, self.opt, self.device)
            self.step, self.best, self.elapsed0 = meta["step"], meta["best_val"], meta["elapsed"]
            self.history = {"grad_norm": [], **meta["history"]}
            print(f"resuming at step {self.step} (best validation loss {self.best:.4f})", file=sys.stderr)
        self.gen = torch.Generator().manual_seed(cfg.seed * 1000 + self.step)
        self.val_starts = torch.arange(0, max(1, len(self.val_ids) - VAL_WINDOW - 1), VAL_WINDOW)
        self.t_start = time.monotonic()
        self.stop_reason, self.died, self.lr_now, self.warm = "steps", None, cfg.lr, 0.05
        self.since_best, self.running, self.last_kept = 0, None, None

    def elapsed(self) -> float:
        return self.elapsed0 + time.monotonic() - self.t_start

    def windows(self, data: torch.Tensor, starts: torch.Tensor, length: int):
        idx = starts[:, None] + torch.arange(length + 1)[None, :]
        chunk = data[idx]
        return chunk[:, :-1].to(self.device), chunk[:, 1:].to(self.device)

    @torch.no_grad()
    def evaluate(self, context: int = 0) -> float:
        """Mean nats/char over the validation windows; `context` more characters before each
        window are read but not scored (0: each window from a blank past, as train.py scores)."""
        self.net.eval()
        total, n = 0.0, 0
        starts = self.val_starts[self.val_starts >= context] - context
        for i in range(0, len(starts), 64):
            x, y = self.windows(self.val_ids, starts[i:i + 64], context + VAL_WINDOW)
            logits, _ = self.net(x)
            total += F.cross_entropy(logits[:, context:].reshape(-1, logits.shape[-1]), y[:, context:].reshape(-1),
                                     reduction="sum").item()
            n += y[:, context:].numel()
        self.net.train()
        return total / max(1, n)

    def card(self, final: bool) -> dict:
        cfg, h = self.cfg, self.history
        return {
            "kind": KIND, "name": self.out.name, "engine_version": __version__, "format": 1,
            "hyperparameters": self.hp, "vocab": self.tok.vocab, "vocab_size": len(self.tok.vocab),
            "corpus": self.corpus.card(), "steps": self.step,
            "epochs": round(self.step * cfg.batch * cfg.seq_len / max(1, len(self.train_ids)), 3),
            "train_loss": round(h["train"][-1][1], 4) if h["train"] else None,
            "val_loss": round(self.best, 4) if self.best < float("inf") else None, "loss_unit": "nats/token",
            "last_eval_step": h["val"][-1][0] if h["val"] else None,
            "validation": {"tokens": int(len(self.val_ids)), "windows": int(len(self.val_starts)),
                           "window": VAL_WINDOW, "whole_split": True},
            "schedule": {"warmup_share": round(self.warm, 4), "peak_lr": cfg.lr, "last_lr": round(self.lr_now, 8),
                         "min_lr": round(cfg.lr * 0.1, 8), "follows": "time budget" if cfg.max_minutes else "steps"},
            "loss_curve": {"train": [[s, round(v, 4)] for s, v in h["train"]],
                           "val": [[s, round(v, 4)] for s, v in h["val"]],
                           "grad_norm": [[s, round(v, 4)] for s, v in h["grad_norm"]]},
            "died": self.died, "last_kept_step": self.last_kept,
            "training_seconds": round(self.elapsed(), 1), "device": self.device,
            "device_name": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "finished": final, "stopped_because": self.stop_reason, "loss_plot": "loss.png",
            "command": "python run.py train " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else None,
        }

    def checkpoint(self, final: bool) -> None:
        save_train_state(self.out, self.net, self.opt, {"step": self.step, "best_val": self.best,
                                                        "history": self.history, "elapsed": self.elapsed()})
        write_card(self.out, self.card(final))

    def validate(self) -> float:
        val = self.evaluate()
        self.history["val"].append((self.step, val))
        if val < self.best - 1e-4:
            self.best, self.since_best = val, 0
            save_weights(self.net, self.out / "model.safetensors")
        else:
            self.since_best += 1
        return val

    def keep(self) -> None:
        """--keep-every: this step as a model folder of its own (DIR@STEP), with its validation loss."""

        kc = self.card(False)
        kc["name"] = f"{self.out.name}@{self.step}"
        kc["val_loss"] = round(self.history["val"][-1][1], 4) if self.history["val"] else None
        kc["val_curve"] = [[s, round(v, 4)] for s, v in self.history["val"]]
        keep_checkpoint(self.out, self.net, kc)
        self.last_kept = self.step

    def train_step(self) -> tuple[float, float]:
        """One optimiser step; (loss, gradient norm before clipping). Nothing is applied when
        either is not finite."""
        cfg = self.cfg
        starts = torch.randint(0, len(self.train_ids) - cfg.seq_len - 1, (cfg.batch,), generator=self.gen)
        x, y = self.windows(self.train_ids, starts, cfg.seq_len)
        logits, _ = self.net(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.clip))
        lv = float(loss.item())
        if math.isfinite(lv) and math.isfinite(gnorm):
            if faults.active(FAULT) and self.step + 1 == int(os.environ.get(FAULT_STEP_ENV, "5")):
                for g in self.opt.param_groups:
                    g["lr"] = self.lr_now * 1e6  # the injected fault: one step at a million times the rate
            self.opt.step()
        return lv, gnorm

    def exploded(self, lv: float, gnorm: float, steps_here: int) -> str | None:
        """Why this step's loss ends the run (None when it does not)."""
        if not math.isfinite(lv):
            return "loss not finite"
        if not math.isfinite(gnorm):
            return "gradient norm not finite"
        if steps_here > CALM_STEPS and self.running is not None and lv > self.cfg.explode * self.running:
            return f"loss exploded: more than {self.cfg.explode:g} × the running loss {self.running:.3f}"
        return None

    def die(self, lv: float, gnorm: float, why: str) -> None:
        """The run's death: written in the card; the broken weights are never saved. A vintage
        kept one step before holds the weights that just exploded: it is removed."""

        if self.last_kept is not None and self.last_kept == self.step - 1:
            shutil.rmtree(step_dir(self.out, self.last_kept), ignore_errors=True)
            self.last_kept = next((s for s in reversed(kept_steps(self.out)) if s < self.step - 1), None)
        self.died = {"step": self.step, "loss": lv if math.isfinite(lv) else str(lv),
                     "grad_norm": gnorm if math.isfinite(gnorm) else str(gnorm), "why": why,
                     "last_kept_step": self.last_kept,
                     "best_val_step": min(self.history["val"], key=lambda sv: sv[1])[0] if self.history["val"] else None}
        self.stop_reason = f"died at step {self.step}: {why} (loss {lv:.4g}, gradient norm {gnorm:.4g})"
        print(f"\n{self.stop_reason}; the last good vintage is step {self.last_kept}", file=sys.stderr)

    def loop(self) -> None:
        cfg = self.cfg
        budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
        self.warm = warmup_share(cfg.steps, budget_s)
        step0, bar, tokens = self.step, _Progress(cfg.steps), 0
        if cfg.keep_every and self.step == 0:
            self.history["val"].append((0, self.evaluate()))
            self.keep()
        while self.step < cfg.steps:
            step_s = (time.monotonic() - self.t_start) / max(1, self.step - step0)
            if budget_s and self.step - step0 == 5:
                self.warm = warmup_share(cfg.steps, budget_s, step_s)
            p = progress(self.step, cfg.steps, self.elapsed(), budget_s and max(1e-9, budget_s - step_s))
            self.lr_now = lr_at(cfg.lr, p, self.warm)
            for g in self.opt.param_groups:
                g["lr"] = self.lr_now
            lv, gnorm = self.train_step()
            self.step += 1
            why = self.exploded(lv, gnorm, self.step - step0)
            if why:
                self.die(lv, gnorm, why)
                return
            tokens += cfg.batch * cfg.seq_len
            self.running = lv if self.running is None else 0.95 * self.running + 0.05 * lv
            if self.step % 10 == 0 or self.step == 1:
                self.history["train"].append((self.step, self.running))
                self.history["grad_norm"].append((self.step, gnorm))
            val = self.validate() if self.step % cfg.eval_every == 0 else None
            if val is not None:
                print(f"\nstep {self.step}: val {val:.4f}, gradient norm {gnorm:.3f}, lr {self.lr_now:.2e}",
                      file=sys.stderr)
            if cfg.keep_every and self.step % cfg.keep_every == 0:
                self.keep()
            bar.show(self.step, self.running, val, tokens / max(1e-9, time.monotonic() - self.t_start),
                     force=val is not None)
            if self.step % cfg.save_every == 0:
                self.checkpoint(False)
            if self.since_best >= cfg.patience:
                self.stop_reason = f"early stop: no better validation loss in {cfg.patience} evaluations"
                return
            if budget_s and p >= 1.0:
                self.stop_reason = f"time budget of {cfg.max_minutes:g} min"
                return

    def finish(self) -> dict:
        """The last evaluation (unless the run died), the card with samples, context loss and plot."""
        if self.died is None:
            if not self.history["val"] or self.history["val"][-1][0] != self.step:
                self.validate()
            self.checkpoint(True)
        if not (self.out / "model.safetensors").exists():  # died before any evaluation: step 0's weights
            raise ModelFileError(f"{self.out}: the run died at step {self.step} before any weights were kept")
        load_weights(self.net, self.out / "model.safetensors", self.device)
        final = self.card(True)
        ctx = min(self.hp["receptive_field"] - 1, 1024)
        final["val_loss_in_context"] = {"loss": round(self.evaluate(ctx), 4), "context": ctx,
                                        "note": "the same windows, each read after the characters before it"}
        final["samples"] = _samples(self.net, self.tok, self.cfg.seed)
        self.net.to(self.device)
        plot_loss(self.history, self.out / "loss.png")
        write_card(self.out, final)
        return final


def _samples(net, tok: CharTokenizer, seed: int) -> dict:
    gen = WaveNetGenerator("card", {}, net.to("cpu"), tok)
    out = {}
    for t in (0.3, 0.7, 1.1):
        s = gen.start(seed)
        out[str(t)] = "".join(s.next(t).text for _ in range(300))
    return out


def train_wavenet(corpus: Corpus, out_dir: Path, cfg: WaveConfig, resume: bool = False) -> dict:
    """Train a char-wavenet on `corpus` into `out_dir`; returns the card."""
    run = _Run(corpus, out_dir, cfg, resume)
    try:
        run.net.train()
        run.loop()
    except KeyboardInterrupt:
        run.stop_reason = "interrupted (Ctrl-C); resume with --resume"
        if not (out_dir / "model.safetensors").exists():
            save_weights(run.net, out_dir / "model.safetensors")
        run.checkpoint(False)
        raise
    sys.stderr.write("\n")
    return run.finish()


def train_from_args(corpus: Corpus, args: Any) -> str:
    """`run.py train --kind char-wavenet`: the WaveNet flags and the trainer's shared ones."""
    get = lambda name, default: getattr(args, name, None) if getattr(args, name, None) is not None else default  # noqa: E731
    cfg = WaveConfig(residual=get("wn_residual", SIZES["residual"]),
                     dilation_channels=get("wn_dilation_channels", SIZES["dilation_channels"]),
                     skip=get("wn_skip", SIZES["skip"]), max_dilation=get("wn_max_dilation", SIZES["max_dilation"]),
                     cycles=get("wn_cycles", SIZES["cycles"]), explode=get("wn_explode", 3.0),
                     seq_len=get("seq_len", 256), batch=get("batch", 16), steps=get("steps", 3000),
                     lr=get("lr", 2e-3), eval_every=get("eval_every", 100), save_every=get("save_every", 500),
                     keep_every=max(0, get("keep_every", 0)), patience=get("patience", 8), seed=get("seed", 1),
                     max_minutes=get("max_minutes", None), device=get("device", "auto"),
                     weight_decay=get("weight_decay", None))
    card = train_wavenet(corpus, Path(args.out), cfg, resume=bool(getattr(args, "resume", False)))
    end = f"died at step {card['died']['step']}" if card["died"] else f"after {card['steps']} steps"
    return (f"wrote {args.out}: validation loss {card['val_loss']} {end} "
            f"({card['training_seconds']:.0f} s on {card['device']})")
