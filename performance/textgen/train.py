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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from performance import __version__
from performance.textgen.awd import AWDConfig, NTTrigger, WeightAverage
from performance.textgen.base import ModelFileError
from performance.textgen.cards import write_card
from performance.textgen.checkpoint import load_train_state, save_train_state, save_weights
from performance.textgen.corpus import Corpus
from performance.textgen.nets import build_net
from performance.textgen.schedule import lr_at, progress, warmup_share
from performance.textgen.tokenizers import CharTokenizer, WordTokenizer

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
    from performance.textgen.neural import NeuralGenerator

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


def _plot(history: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if history["train"]:
        ax.plot(*zip(*history["train"], strict=True), label="train", lw=1)
    if history["val"]:
        ax.plot(*zip(*history["val"], strict=True), label="validation", lw=2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
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


def train(corpus: Corpus, out_dir: Path, cfg: TrainConfig, resume: bool = False) -> dict:
    """Train `cfg.kind` on `corpus` into `out_dir`; returns the card."""
    out_dir.mkdir(parents=True, exist_ok=True)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
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
    init_card = None
    if cfg.init_from and not resume:
        from performance.textgen.cards import read_card, resolve_model_dir

        init_dir = resolve_model_dir(cfg.init_from)
        init_card = read_card(init_dir)
        if init_card["kind"] != cfg.kind:
            raise ModelFileError(f"{init_dir / 'model.json'}: kind {init_card['kind']!r}, but --kind is {cfg.kind!r}")
        vocab = init_card["vocab"]
        for k in ("layers", "hidden", "embed", "heads", "context", "tie"):
            setattr(cfg, k, init_card["hyperparameters"].get(k, getattr(cfg, k)))
        cfg.positions = init_card["hyperparameters"].get("positions", "learned")
    is_char = cfg.kind.startswith("char")
    if vocab is None:
        tok = CharTokenizer.build(corpus.text) if is_char else WordTokenizer.build(corpus.text, cfg.max_vocab)
    else:
        tok = CharTokenizer(vocab) if is_char else WordTokenizer(vocab)
    ids = torch.tensor(tok.encode(corpus.text), dtype=torch.long)
    split = int(len(ids) * 0.9)
    train_ids, val_ids = ids[:split], ids[split:]
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
    net = build_net(hp, len(tok.vocab)).to(device)
    if init_card is not None:
        from performance.textgen.checkpoint import load_weights

        load_weights(net, init_dir / "model.safetensors", device)
    opt = _optimizer(net, cfg)
    step, best, history, elapsed0 = 0, float("inf"), {"train": [], "val": []}, 0.0
    if resume:
        meta = load_train_state(out_dir, net, opt, device)
        step, best, history, elapsed0 = meta["step"], meta["best_val"], meta["history"], meta["elapsed"]
        print(f"resuming at step {step} (best validation loss {best:.4f})", file=sys.stderr)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + step)
    val_gen = torch.Generator().manual_seed(12345)
    n_val = max(1, len(val_ids) - cfg.seq_len - 1)
    if cfg.eval_batches > 0:
        val_starts = torch.randint(0, n_val, (cfg.eval_batches * cfg.batch,), generator=val_gen)
    else:  # the whole split, in consecutive windows (the shipped corpus: 508 windows of 128)
        val_starts = torch.arange(0, n_val, cfg.seq_len)

    def batch_from(data: torch.Tensor, starts: torch.Tensor):
        idx = starts[:, None] + torch.arange(cfg.seq_len + 1)[None, :]
        chunk = data[idx]
        return chunk[:, :-1].to(device), chunk[:, 1:].to(device)

    @torch.no_grad()
    def evaluate() -> float:
        net.eval()
        total, n = 0.0, 0
        eb = max(cfg.batch, 64)
        for i in range(0, len(val_starts), eb):
            x, y = batch_from(val_ids, val_starts[i:i + eb])
            logits, _ = net(x)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            n += y.numel()
        net.train()
        return total / max(1, n)

    if init_card is not None and not history["val"]:
        # the starting point is the bar to beat on this corpus's split: kept unless bettered
        best = evaluate()
        history["val"].append((0, best))
        save_weights(net, out_dir / "model.safetensors")
        print(f"validation loss of {cfg.init_from} on this split: {best:.4f}", file=sys.stderr)
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
    warm = warmup_share(cfg.steps, budget_s)
    trigger = NTTrigger(cfg.nt_asgd or 0)
    averager: WeightAverage | None = None
    averaged_from: int | None = None
    t_start = time.monotonic()
    step0 = step
    progress_line = _Progress(cfg.steps)
    since_best, running, tokens_done, stop_reason = 0, None, 0, "steps"
    lr_now, eval_s = cfg.lr, 0.0

    def elapsed() -> float:
        return elapsed0 + time.monotonic() - t_start

    def card(final: bool) -> dict:
        return {
            "kind": cfg.kind, "name": out_dir.name, "engine_version": __version__, "format": 1,
            "hyperparameters": hp, "vocab": tok.vocab, "vocab_size": len(tok.vocab),
            "corpus": corpus.card(), "steps": step, "epochs": round(step * cfg.batch * cfg.seq_len / max(1, len(train_ids)), 3),
            "train_loss": round(history["train"][-1][1], 4) if history["train"] else None,
            "val_loss": round(best, 4) if best < float("inf") else None, "loss_unit": "nats/token",
            "last_eval_step": history["val"][-1][0] if history["val"] else None,
            "validation": {"tokens": int(len(val_ids)), "windows": int(len(val_starts)), "window": cfg.seq_len,
                           "whole_split": cfg.eval_batches <= 0},
            "schedule": {"warmup_share": round(warm, 4), "peak_lr": cfg.lr, "last_lr": round(lr_now, 8),
                         "min_lr": round(cfg.lr * 0.1, 8), "follows": "time budget" if budget_s else "steps"},
            "sampler_context": ({"context": hp["context"], "trained_window": cfg.seq_len,
                                 "when_full": "re-reads the last context/2 tokens into the KV cache and goes on "
                                              "(a sliding window re-run per token would cost the whole context)"}
                                if not is_recurrent(cfg.kind) else None),
            "initialised_from": ({"model": str(cfg.init_from), "corpus": init_card.get("corpus"),
                                  "val_loss": init_card.get("val_loss"), "steps": init_card.get("steps"),
                                  "training_seconds": init_card.get("training_seconds")}
                                 if init_card is not None else None),
            "averaging": {"nt_asgd": cfg.nt_asgd, "started_at_step": averaged_from} if awd is not None else None,
            "training_seconds": round(elapsed(), 1), "device": device,
            "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "finished": final,
            "stopped_because": stop_reason, "loss_plot": "loss.png",
            "command": "python run.py train " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else None,
        }

    def checkpoint(final: bool) -> None:
        save_train_state(out_dir, net, opt, {"step": step, "best_val": best, "history": history,
                                             "elapsed": elapsed()})
        write_card(out_dir, card(final))

    def validate() -> float:
        """Evaluate (the averaged weights once averaging has begun); keep the best on disk."""
        nonlocal best, since_best, averager, averaged_from, eval_s
        t0 = time.monotonic()
        if averager is not None:
            averager.swap()
        val = evaluate()
        history["val"].append((step, val))
        if val < best - 1e-4:
            best, since_best = val, 0
            save_weights(net, out_dir / "model.safetensors")
        else:
            since_best += 1
        if averager is not None:
            averager.swap()
        elif trigger.update(val):
            averager = WeightAverage([p for p in net.parameters()])
            averaged_from, since_best = step, 0
            print(f"\nstep {step}: validation stalled, averaging weights from here (NT-ASGD)", file=sys.stderr)
        eval_s = time.monotonic() - t0
        return val

    def keep() -> None:
        """--keep-every: this step as a model folder of its own, with the latest validation loss."""
        from performance.textgen.vintages import keep_checkpoint

        kc = card(False)
        kc["name"] = f"{out_dir.name}@{step}"
        kc["val_loss"] = round(history["val"][-1][1], 4) if history["val"] else None
        kc["val_curve"] = [[s, round(v, 4)] for s, v in history["val"]]
        keep_checkpoint(out_dir, net, kc)

    if cfg.keep_every and step == 0:
        history["val"].append((0, evaluate()))
        keep()
    try:
        net.train()
        while step < cfg.steps:
            # the schedule's clock leaves room for one more step and the final evaluation; when it
            # reaches the end, this step runs at the minimum rate and is the last
            step_s = (time.monotonic() - t_start) / max(1, step - step0)
            if budget_s and step - step0 == WARMUP_PROBE_STEPS:  # the budget's length in steps, measured
                warm = warmup_share(cfg.steps, budget_s, step_s)
            p = progress(step, cfg.steps, elapsed(), budget_s and max(1e-9, budget_s - eval_s - step_s))
            lr_now = lr_at(cfg.lr, p, warm)
            for g in opt.param_groups:
                g["lr"] = lr_now
            starts = torch.randint(0, len(train_ids) - cfg.seq_len - 1, (cfg.batch,), generator=gen)
            x, y = batch_from(train_ids, starts)
            logits, _ = net(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            total = loss + net.reg_loss if awd is not None else loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
            opt.step()
            if averager is not None:
                averager.update()
            step += 1
            tokens_done += x.numel()
            lv = loss.item()
            running = lv if running is None else 0.95 * running + 0.05 * lv
            if step % 10 == 0 or step == 1:
                history["train"].append((step, running))
            val = validate() if step % cfg.eval_every == 0 else None
            if cfg.keep_every and step % cfg.keep_every == 0:
                keep()
            rate = tokens_done / max(1e-9, time.monotonic() - t_start)
            progress_line.show(step, running, val, rate, force=val is not None)
            if step % cfg.save_every == 0:
                checkpoint(False)
            if since_best >= cfg.patience:
                stop_reason = f"early stop: no better validation loss in {cfg.patience} evaluations"
                break
            if budget_s and p >= 1.0:
                stop_reason = f"time budget of {cfg.max_minutes:g} min"
                break
    except KeyboardInterrupt:
        stop_reason = "interrupted (Ctrl-C); resume with --resume"
        print("\ninterrupted: saving before exit", file=sys.stderr)
        if not (out_dir / "model.safetensors").exists():
            save_weights(net, out_dir / "model.safetensors")
        checkpoint(False)
        raise
    if not history["val"] or history["val"][-1][0] != step:
        validate()  # every run ends with an evaluation of where it ended
    sys.stderr.write("\n")
    if not (out_dir / "model.safetensors").exists():
        save_weights(net, out_dir / "model.safetensors")
    checkpoint(True)
    # the card's samples and plot come from the best weights, as shipped
    from performance.textgen.checkpoint import load_weights

    load_weights(net, out_dir / "model.safetensors", device)
    final = card(True)
    final["samples"] = _samples(net, tok, cfg.kind, device, cfg.seed)
    _plot(history, out_dir / "loss.png")
    write_card(out_dir, final)
    return final


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
