"""Training for the neural kinds: validation split, early stopping, checkpoints, --resume, Ctrl-C.

The first 90% of the corpus trains, the last 10% validates (all of it, in windows of --seq-len,
unless --eval-batches asks for a random sample). The best validation loss is what
model.safetensors holds; train_state.* holds the last step for --resume. The schedule (schedule.py)
follows --steps or the --max-minutes budget, whichever ends first, and a run always ends with a
final evaluation. Recurrent kinds train with AWD-LSTM's regularisers and NT-ASGD's weight
averaging (awd.py); transformers with nanoGPT's recipe (init in nets.py, AdamW with weight decay
on matrices only). A transformer's context is the --seq-len it trained on: positions it never
saw are never used when sampling.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from performance import __version__
from performance.textgen.awd import AWDConfig, NTTrigger, WeightAverage
from performance.textgen.base import ModelFileError
from performance.textgen.cards import read_card, resolve_model_dir, write_card
from performance.textgen.checkpoint import load_train_state, load_weights, save_train_state, save_weights
from performance.textgen.corpus import Corpus
from performance.textgen.nets import build_net
from performance.textgen.neural import NeuralGenerator
from performance.textgen.schedule import lr_at, progress, warmup_share
from performance.textgen.tokenizers import CharTokenizer, WordTokenizer
from performance.textgen.vintages import keep_checkpoint

WARMUP_PROBE_STEPS = 5  # steps timed before a budgeted run fixes its warm-up length


@dataclass
class TrainConfig:
    kind: str
    layers: int = 2
    hidden: int = 256
    embed: int = 64
    heads: int = 4
    context: int = 256
    seq_len: int = 128
    batch: int = 32
    steps: int = 3000
    lr: float = 3e-3
    dropout: float = 0.1
    tie: bool = False
    positions: str = "rope"  # transformer kinds: "rope" or "learned" (cards without the key: learned)
    eval_every: int = 100
    eval_batches: int = 0  # 0: the whole validation split
    save_every: int = 500
    patience: int = 8
    clip: float = 1.0
    seed: int = 1
    max_minutes: float | None = None
    device: str = "auto"
    max_vocab: int = 30000
    keep_every: int = 0  # keep step-NNNNNN/ (its own card) every N steps, step 0 included (vintages.py)
    # AWD-LSTM (recurrent kinds); None takes the kind's default (AWD_DEFAULTS)
    wdrop: float | None = None
    dropoute: float | None = None
    dropouti: float | None = None
    dropouth: float | None = None
    alpha: float | None = None
    beta: float | None = None
    nt_asgd: int | None = None  # non-monotone interval in evaluations; 0 = never average
    weight_decay: float | None = None  # None: 0.1 on a transformer's matrices, 0 for recurrent kinds
    init_from: str | None = None  # a model folder or name: start from its weights and vocabulary


# awd-lstm-lm's settings for character-level (PTB/enwik8 char) and word-level (PTB) models, as
# the defaults for small corpora; --dropout is the output dropout
AWD_DEFAULTS = {
    "char": {"wdrop": 0.5, "dropoute": 0.0, "dropouti": 0.1, "dropouth": 0.25, "alpha": 2.0, "beta": 1.0,
             "nt_asgd": 5},
    "word": {"wdrop": 0.5, "dropoute": 0.1, "dropouti": 0.4, "dropouth": 0.25, "alpha": 2.0, "beta": 1.0,
             "nt_asgd": 5},
}


def is_recurrent(kind: str) -> bool:
    return not kind.endswith("transformer")


def resolve_awd(cfg: TrainConfig) -> AWDConfig | None:
    """Fill the kind's AWD defaults into `cfg` (recurrent kinds) and return the regularisation."""
    if not is_recurrent(cfg.kind):
        return None
    d = AWD_DEFAULTS["char" if cfg.kind.startswith("char") else "word"]
    for k, v in d.items():
        if getattr(cfg, k) is None:
            setattr(cfg, k, v)
    return AWDConfig(wdrop=cfg.wdrop, dropoute=cfg.dropoute, dropouti=cfg.dropouti, dropouth=cfg.dropouth,
                     dropout=cfg.dropout, alpha=cfg.alpha, beta=cfg.beta)


def pick_device(name: str) -> str:
    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


class _Progress:
    """One self-rewriting line on stderr: step, loss, val, tokens/s, ETA."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def show(self, step: int, loss: float, val: float | None, tok_s: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < (0.5 if self.tty else 15):
            return
        self.last = now
        done = step / max(1, self.total)
        eta = (now - self.t0) / max(1e-9, done) * (1 - done) if done > 0 else 0
        bar = "#" * int(24 * done) + "-" * (24 - int(24 * done))
        v = f" val {val:.3f}" if val is not None else ""
        line = f"[{bar}] {step}/{self.total} loss {loss:.3f}{v} {tok_s:,.0f} tok/s ETA {eta / 60:.1f} min"
        sys.stderr.write(("\r" + line + "   ") if self.tty else line + "\n")
        sys.stderr.flush()


def _samples(net, tok, kind: str, device: str, seed: int) -> dict:
    """A few samples for the card, drawn with the engine's own sampler."""
    gen = NeuralGenerator("card", kind, {}, net.to("cpu"), tok, device="cpu")
    out = {}
    for t in (0.3, 0.7, 1.1):
        s = gen.start(seed, "")
        text = ""
        for _ in range(300 if kind.startswith("char") else 60):
            text += s.next(t).text
        out[str(t)] = text
    net.to(device)
    return out


def plot_loss(history: dict, path: Path, train_label: str = "train", val_label: str = "validation",
              ylabel: str | None = "loss (nats/token)") -> None:
    """The loss curve as a PNG (train thin, validation thick), for the card's folder."""
    # lazy: matplotlib (~1 s) loads only when a training run draws its loss curve
    import matplotlib

    matplotlib.use("Agg")
    # lazy: matplotlib (~1 s) loads only when a training run draws its loss curve
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if history["train"]:
        ax.plot(*zip(*history["train"], strict=True), label=train_label, lw=1)
    if history["val"]:
        ax.plot(*zip(*history["val"], strict=True), label=val_label, lw=2)
    ax.set_xlabel("step")
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _optimizer(net: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, betas (0.9, 0.99) as nanoGPT uses for small data. Weight decay (0.1 by default on a
    transformer) only on matrices: never on norms, biases or embeddings (nor a head tied to one)."""
    wd = cfg.weight_decay if cfg.weight_decay is not None else (0.0 if is_recurrent(cfg.kind) else 0.1)
    emb = {id(m.weight) for m in net.modules() if isinstance(m, torch.nn.Embedding)}
    params = list({id(p): p for p in net.parameters()}.values())
    decay = [p for p in params if p.dim() >= 2 and id(p) not in emb]
    rest = [p for p in params if not (p.dim() >= 2 and id(p) not in emb)]
    groups = [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))


def _starting_point(cfg: TrainConfig, out_dir: Path, resume: bool) -> tuple[list | None, dict | None, Path | None]:
    """Where the weights and vocabulary come from: --resume takes the run's own card (its sizes
    override the command line's), --init-from another model's (its kind must match); else none.
    Returns (vocab, the --init-from card, its folder)."""
    if resume:
        card_path = out_dir / "model.json"
        if not card_path.exists():
            raise ModelFileError(f"{card_path}: nothing to resume")
        old = json.loads(card_path.read_text())
        vocab = old["vocab"]
        saved_cfg = old["hyperparameters"]
        for k in ("layers", "hidden", "embed", "heads", "context", "tie", "kind"):
            setattr(cfg, k, saved_cfg.get(k, getattr(cfg, k)))
        cfg.positions = saved_cfg.get("positions", "learned")
    else:
        vocab = None
    init_card, init_dir = None, None
    if cfg.init_from and not resume:
        init_dir = resolve_model_dir(cfg.init_from)
        init_card = read_card(init_dir)
        if init_card["kind"] != cfg.kind:
            raise ModelFileError(f"{init_dir / 'model.json'}: kind {init_card['kind']!r}, but --kind is {cfg.kind!r}")
        vocab = init_card["vocab"]
        for k in ("layers", "hidden", "embed", "heads", "context", "tie"):
            setattr(cfg, k, init_card["hyperparameters"].get(k, getattr(cfg, k)))
        cfg.positions = init_card["hyperparameters"].get("positions", "learned")
    return vocab, init_card, init_dir


def _tokenize(corpus: Corpus, cfg: TrainConfig, vocab: list | None):
    """The tokenizer (built from the corpus, or from a given vocabulary) and the corpus as ids,
    split 90% train, 10% validation."""
    is_char = cfg.kind.startswith("char")
    if vocab is None:
        tok = CharTokenizer.build(corpus.text) if is_char else WordTokenizer.build(corpus.text, cfg.max_vocab)
    else:
        tok = CharTokenizer(vocab) if is_char else WordTokenizer(vocab)
    ids = torch.tensor(tok.encode(corpus.text), dtype=torch.long)
    split = int(len(ids) * 0.9)
    return tok, ids[:split], ids[split:]


def _hyperparameters(cfg: TrainConfig, resume: bool) -> tuple[AWDConfig | None, dict]:
    """The card's hyperparameters (the config less device and budget, with the AWD settings of a
    recurrent kind); a new transformer's context becomes its --seq-len."""
    awd = resolve_awd(cfg)
    hp = {k: v for k, v in asdict(cfg).items() if k not in ("device", "max_minutes")}
    if awd is not None:
        hp["awd"] = asdict(awd)
    if not is_recurrent(cfg.kind):
        # every position the sampler uses is one that trained: the context is the training window
        if cfg.context != cfg.seq_len and not resume:
            print(f"note: --context {cfg.context} set to --seq-len {cfg.seq_len}, the window the model trains on",
                  file=sys.stderr)
        hp["context"] = cfg.context = cfg.seq_len if not resume else cfg.context
    return awd, hp


def _validation_windows(cfg: TrainConfig, val_ids: torch.Tensor) -> torch.Tensor:
    """Where each validation window starts: all of the split, or --eval-batches random batches
    (always the same ones: their generator has its own seed)."""
    val_gen = torch.Generator().manual_seed(12345)
    n_val = max(1, len(val_ids) - cfg.seq_len - 1)
    if cfg.eval_batches > 0:
        return torch.randint(0, n_val, (cfg.eval_batches * cfg.batch,), generator=val_gen)
    # the whole split, in consecutive windows (the shipped corpus: 508 windows of 128)
    return torch.arange(0, n_val, cfg.seq_len)


@dataclass(eq=False)
class _Run:
    """One training run: what it trains on, the net and optimiser, and the state that changes
    step by step (what a checkpoint saves and the card reports)."""

    cfg: TrainConfig
    corpus: Corpus
    out_dir: Path
    device: str
    tok: Any
    train_ids: torch.Tensor
    val_ids: torch.Tensor
    awd: AWDConfig | None
    hp: dict
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    init_card: dict | None
    val_starts: torch.Tensor | None = None
    gen: torch.Generator | None = None
    step: int = 0
    best: float = float("inf")
    history: dict = field(default_factory=lambda: {"train": [], "val": []})
    elapsed0: float = 0.0
    budget_s: float | None = None
    warm: float = 0.0
    trigger: NTTrigger | None = None
    averager: WeightAverage | None = None
    averaged_from: int | None = None
    t_start: float = 0.0
    step0: int = 0
    progress_line: _Progress | None = None
    since_best: int = 0
    running: float | None = None
    tokens_done: int = 0
    stop_reason: str = "steps"
    lr_now: float = 0.0
    eval_s: float = 0.0

    def resume(self) -> None:
        """Take the step, best loss, history and time so far from train_state.*."""
        meta = load_train_state(self.out_dir, self.net, self.opt, self.device)
        self.step, self.best, self.history, self.elapsed0 = (meta["step"], meta["best_val"], meta["history"],
                                                              meta["elapsed"])
        print(f"resuming at step {self.step} (best validation loss {self.best:.4f})", file=sys.stderr)

    def start_clock(self) -> None:
        """The schedule, the NT-ASGD trigger and the progress line, from now."""
        cfg = self.cfg
        self.budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
        self.warm = warmup_share(cfg.steps, self.budget_s)
        self.trigger = NTTrigger(cfg.nt_asgd or 0)
        self.t_start = time.monotonic()
        self.step0 = self.step
        self.progress_line = _Progress(cfg.steps)
        self.lr_now = cfg.lr

    def elapsed(self) -> float:
        return self.elapsed0 + time.monotonic() - self.t_start

    def batch_from(self, data: torch.Tensor, starts: torch.Tensor):
        idx = starts[:, None] + torch.arange(self.cfg.seq_len + 1)[None, :]
        chunk = data[idx]
        return chunk[:, :-1].to(self.device), chunk[:, 1:].to(self.device)

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean loss per token over the validation windows, in eval mode."""
        net = self.net
        net.eval()
        total, n = 0.0, 0
        eb = max(self.cfg.batch, 64)
        for i in range(0, len(self.val_starts), eb):
            x, y = self.batch_from(self.val_ids, self.val_starts[i:i + eb])
            logits, _ = net(x)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            n += y.numel()
        net.train()
        return total / max(1, n)

    def baseline(self) -> None:
        """--init-from: the starting point is the bar to beat on this corpus's split, kept unless bettered."""
        self.best = self.evaluate()
        self.history["val"].append((0, self.best))
        save_weights(self.net, self.out_dir / "model.safetensors")
        print(f"validation loss of {self.cfg.init_from} on this split: {self.best:.4f}", file=sys.stderr)

    def card(self, final: bool) -> dict:
        """The model card as the run stands (model.json)."""
        cfg, hp, history, init_card, device = self.cfg, self.hp, self.history, self.init_card, self.device
        return {
            "kind": cfg.kind, "name": self.out_dir.name, "engine_version": __version__, "format": 1,
            "hyperparameters": hp, "vocab": self.tok.vocab, "vocab_size": len(self.tok.vocab),
            "corpus": self.corpus.card(), "steps": self.step,
            "epochs": round(self.step * cfg.batch * cfg.seq_len / max(1, len(self.train_ids)), 3),
            "train_loss": round(history["train"][-1][1], 4) if history["train"] else None,
            "val_loss": round(self.best, 4) if self.best < float("inf") else None, "loss_unit": "nats/token",
            "last_eval_step": history["val"][-1][0] if history["val"] else None,
            "validation": {"tokens": int(len(self.val_ids)), "windows": int(len(self.val_starts)),
                           "window": cfg.seq_len, "whole_split": cfg.eval_batches <= 0},
            "schedule": {"warmup_share": round(self.warm, 4), "peak_lr": cfg.lr, "last_lr": round(self.lr_now, 8),
                         "min_lr": round(cfg.lr * 0.1, 8), "follows": "time budget" if self.budget_s else "steps"},
            "sampler_context": ({"context": hp["context"], "trained_window": cfg.seq_len,
                                 "when_full": "re-reads the last context/2 tokens into the KV cache and goes on "
                                              "(a sliding window re-run per token would cost the whole context)"}
                                if not is_recurrent(cfg.kind) else None),
            "initialised_from": ({"model": str(cfg.init_from), "corpus": init_card.get("corpus"),
                                  "val_loss": init_card.get("val_loss"), "steps": init_card.get("steps"),
                                  "training_seconds": init_card.get("training_seconds")}
                                 if init_card is not None else None),
            "averaging": ({"nt_asgd": cfg.nt_asgd, "started_at_step": self.averaged_from}
                          if self.awd is not None else None),
            "training_seconds": round(self.elapsed(), 1), "device": device,
            "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "finished": final,
            "stopped_because": self.stop_reason, "loss_plot": "loss.png",
            "command": "python run.py train " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else None,
        }

    def checkpoint(self, final: bool) -> None:
        """train_state.* for --resume, and the card."""
        save_train_state(self.out_dir, self.net, self.opt, {"step": self.step, "best_val": self.best,
                                                            "history": self.history, "elapsed": self.elapsed()})
        write_card(self.out_dir, self.card(final))

    def validate(self) -> float:
        """Evaluate (the averaged weights once averaging has begun); keep the best on disk."""
        t0 = time.monotonic()
        if self.averager is not None:
            self.averager.swap()
        val = self.evaluate()
        self.history["val"].append((self.step, val))
        if val < self.best - 1e-4:
            self.best, self.since_best = val, 0
            save_weights(self.net, self.out_dir / "model.safetensors")
        else:
            self.since_best += 1
        if self.averager is not None:
            self.averager.swap()
        elif self.trigger.update(val):
            self.averager = WeightAverage([p for p in self.net.parameters()])
            self.averaged_from, self.since_best = self.step, 0
            print(f"\nstep {self.step}: validation stalled, averaging weights from here (NT-ASGD)", file=sys.stderr)
        self.eval_s = time.monotonic() - t0
        return val

    def keep(self) -> None:
        """--keep-every: this step as a model folder of its own, with the latest validation loss."""

        kc = self.card(False)
        kc["name"] = f"{self.out_dir.name}@{self.step}"
        kc["val_loss"] = round(self.history["val"][-1][1], 4) if self.history["val"] else None
        kc["val_curve"] = [[s, round(v, 4)] for s, v in self.history["val"]]
        keep_checkpoint(self.out_dir, self.net, kc)

    def set_lr(self) -> float:
        """This step's learning rate from the schedule; returns the schedule's progress (1.0: the end).

        The schedule's clock leaves room for one more step and the final evaluation; when it
        reaches the end, this step runs at the minimum rate and is the last."""
        cfg = self.cfg
        step_s = (time.monotonic() - self.t_start) / max(1, self.step - self.step0)
        if self.budget_s and self.step - self.step0 == WARMUP_PROBE_STEPS:  # the budget's length in steps, measured
            self.warm = warmup_share(cfg.steps, self.budget_s, step_s)
        p = progress(self.step, cfg.steps, self.elapsed(),
                     self.budget_s and max(1e-9, self.budget_s - self.eval_s - step_s))
        self.lr_now = lr_at(cfg.lr, p, self.warm)
        for g in self.opt.param_groups:
            g["lr"] = self.lr_now
        return p

    def train_step(self) -> None:
        """One optimiser step on a random batch; the running loss goes into the history every 10 steps."""
        cfg, net = self.cfg, self.net
        starts = torch.randint(0, len(self.train_ids) - cfg.seq_len - 1, (cfg.batch,), generator=self.gen)
        x, y = self.batch_from(self.train_ids, starts)
        logits, _ = net(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        total = loss + net.reg_loss if self.awd is not None else loss
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
        self.opt.step()
        if self.averager is not None:
            self.averager.update()
        self.step += 1
        self.tokens_done += x.numel()
        lv = loss.item()
        self.running = lv if self.running is None else 0.95 * self.running + 0.05 * lv
        if self.step % 10 == 0 or self.step == 1:
            self.history["train"].append((self.step, self.running))

    def ensure_weights_file(self) -> None:
        """model.safetensors always exists at the end, even if no evaluation bettered anything."""
        if not (self.out_dir / "model.safetensors").exists():
            save_weights(self.net, self.out_dir / "model.safetensors")

    def finish(self) -> dict:
        """The closing evaluation, the last checkpoint, and the final card with samples and plot."""
        if not self.history["val"] or self.history["val"][-1][0] != self.step:
            self.validate()  # every run ends with an evaluation of where it ended
        sys.stderr.write("\n")
        self.ensure_weights_file()
        self.checkpoint(True)
        # the card's samples and plot come from the best weights, as shipped

        load_weights(self.net, self.out_dir / "model.safetensors", self.device)
        final = self.card(True)
        final["samples"] = _samples(self.net, self.tok, self.cfg.kind, self.device, self.cfg.seed)
        plot_loss(self.history, self.out_dir / "loss.png")
        write_card(self.out_dir, final)
        return final


def _train_loop(run: _Run) -> None:
    """Step until --steps, early stopping, or the time budget; Ctrl-C saves before it re-raises."""
    cfg = run.cfg
    try:
        run.net.train()
        while run.step < cfg.steps:
            p = run.set_lr()
            run.train_step()
            val = run.validate() if run.step % cfg.eval_every == 0 else None
            if cfg.keep_every and run.step % cfg.keep_every == 0:
                run.keep()
            rate = run.tokens_done / max(1e-9, time.monotonic() - run.t_start)
            run.progress_line.show(run.step, run.running, val, rate, force=val is not None)
            if run.step % cfg.save_every == 0:
                run.checkpoint(False)
            if run.since_best >= cfg.patience:
                run.stop_reason = f"early stop: no better validation loss in {cfg.patience} evaluations"
                break
            if run.budget_s and p >= 1.0:
                run.stop_reason = f"time budget of {cfg.max_minutes:g} min"
                break
    except KeyboardInterrupt:
        run.stop_reason = "interrupted (Ctrl-C); resume with --resume"
        print("\ninterrupted: saving before exit", file=sys.stderr)
        run.ensure_weights_file()
        run.checkpoint(False)
        raise


def train(corpus: Corpus, out_dir: Path, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train `cfg.kind` on `corpus` into `out_dir`; returns the card."""
    out_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    vocab, init_card, init_dir = _starting_point(cfg, out_dir, resume)
    tok, train_ids, val_ids = _tokenize(corpus, cfg, vocab)
    awd, hp = _hyperparameters(cfg, resume)
    net = build_net(hp, len(tok.vocab)).to(device)
    if init_card is not None:
        load_weights(net, init_dir / "model.safetensors", device)
    run = _Run(cfg=cfg, corpus=corpus, out_dir=out_dir, device=device, tok=tok, train_ids=train_ids,
               val_ids=val_ids, awd=awd, hp=hp, net=net, opt=_optimizer(net, cfg), init_card=init_card)
    if resume:
        run.resume()
    run.gen = torch.Generator().manual_seed(cfg.seed * 1000 + run.step)
    run.val_starts = _validation_windows(cfg, val_ids)
    if init_card is not None and not run.history["val"]:
        run.baseline()
    run.start_clock()
    if cfg.keep_every and run.step == 0:
        run.history["val"].append((0, run.evaluate()))
        run.keep()
    _train_loop(run)
    return run.finish()


def train_from_args(corpus: Corpus, args: Any) -> str:
    """`run.py train --kind <neural kind>`: the command line's sizes and recipe, then `train`."""
    recurrent = not args.kind.endswith("transformer")
    dropout = args.dropout if args.dropout is not None else (
        (0.1 if args.kind.startswith("char") else 0.4) if recurrent else 0.1)
    cfg = TrainConfig(kind=args.kind, layers=args.layers, hidden=args.hidden, embed=args.embed, heads=args.heads,
                      context=args.context, seq_len=args.seq_len, batch=args.batch, steps=args.steps, lr=args.lr,
                      dropout=dropout, tie=args.tie, positions=args.positions, eval_every=args.eval_every,
                      save_every=args.save_every,
                      patience=args.patience, seed=args.seed, max_minutes=args.max_minutes, device=args.device,
                      max_vocab=args.max_vocab, eval_batches=args.eval_batches, wdrop=args.wdrop,
                      dropoute=args.dropoute, dropouti=args.dropouti, dropouth=args.dropouth, alpha=args.alpha,
                      beta=args.beta, nt_asgd=args.nt_asgd, weight_decay=args.weight_decay,
                      init_from=args.init_from, keep_every=max(0, args.keep_every))
    card = train(corpus, args.out, cfg, resume=args.resume)
    return (f"wrote {args.out}: validation loss {card['val_loss']} after {card['steps']} steps "
            f"({card['training_seconds']:.0f} s on {card['device']})")
