"""Training for the neural kinds: validation split, early stopping, checkpoints, --resume, Ctrl-C.

The first 90% of the corpus trains, the last 10% validates. The best validation loss is what
model.safetensors holds; train_state.* holds the last step for --resume.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.nn import functional as F

from performance import __version__
from performance.textgen.base import ModelFileError
from performance.textgen.checkpoint import load_train_state, save_train_state, save_weights, write_card
from performance.textgen.corpus import Corpus
from performance.textgen.nets import build_net
from performance.textgen.tokenizers import CharTokenizer, WordTokenizer


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
    eval_every: int = 100
    eval_batches: int = 16
    save_every: int = 500
    patience: int = 8
    clip: float = 1.0
    seed: int = 1
    max_minutes: float | None = None
    device: str = "auto"
    max_vocab: int = 30000
    keep_every: int = 0  # keep step-NNNNNN/ (its own card) every N steps, step 0 included (vintages.py)


def pick_device(name: str) -> str:
    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


def _lr_at(cfg: TrainConfig, step: int) -> float:
    warm = max(1, min(200, cfg.steps // 20))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    frac = (step - warm) / max(1, cfg.steps - warm)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


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
    else:
        vocab = None
    is_char = cfg.kind.startswith("char")
    if vocab is None:
        tok = CharTokenizer.build(corpus.text) if is_char else WordTokenizer.build(corpus.text, cfg.max_vocab)
    else:
        tok = CharTokenizer(vocab) if is_char else WordTokenizer(vocab)
    ids = torch.tensor(tok.encode(corpus.text), dtype=torch.long)
    split = int(len(ids) * 0.9)
    train_ids, val_ids = ids[:split], ids[split:]
    hp = {k: v for k, v in asdict(cfg).items() if k not in ("device", "max_minutes")}
    if cfg.kind.endswith("transformer"):
        hp["context"] = cfg.context = max(cfg.context, cfg.seq_len)
    net = build_net(hp, len(tok.vocab)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.01 if cfg.kind.endswith("transformer") else 0.0,
                            betas=(0.9, 0.99))
    step, best, history, elapsed0 = 0, float("inf"), {"train": [], "val": []}, 0.0
    if resume:
        meta = load_train_state(out_dir, net, opt, device)
        step, best, history, elapsed0 = meta["step"], meta["best_val"], meta["history"], meta["elapsed"]
        print(f"resuming at step {step} (best validation loss {best:.4f})", file=sys.stderr)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + step)
    val_gen = torch.Generator().manual_seed(12345)
    n_val = max(1, len(val_ids) - cfg.seq_len - 1)
    val_starts = torch.randint(0, n_val, (cfg.eval_batches * cfg.batch,), generator=val_gen)

    def batch_from(data: torch.Tensor, starts: torch.Tensor):
        idx = starts[:, None] + torch.arange(cfg.seq_len + 1)[None, :]
        chunk = data[idx]
        return chunk[:, :-1].to(device), chunk[:, 1:].to(device)

    @torch.no_grad()
    def evaluate() -> float:
        net.eval()
        total = 0.0
        for i in range(cfg.eval_batches):
            x, y = batch_from(val_ids, val_starts[i * cfg.batch:(i + 1) * cfg.batch])
            logits, _ = net(x)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()
        net.train()
        return total / cfg.eval_batches

    t_start = time.monotonic()
    progress = _Progress(cfg.steps)
    since_best, running, tokens_done, stop_reason = 0, None, 0, "steps"

    def card(final: bool) -> dict:
        return {
            "kind": cfg.kind, "name": out_dir.name, "engine_version": __version__, "format": 1,
            "hyperparameters": hp, "vocab": tok.vocab, "vocab_size": len(tok.vocab),
            "corpus": corpus.card(), "steps": step, "epochs": round(step * cfg.batch * cfg.seq_len / max(1, len(train_ids)), 3),
            "train_loss": round(history["train"][-1][1], 4) if history["train"] else None,
            "val_loss": round(best, 4) if best < float("inf") else None, "loss_unit": "nats/token",
            "training_seconds": round(elapsed0 + time.monotonic() - t_start, 1), "device": device,
            "device_name": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "finished": final,
            "stopped_because": stop_reason, "loss_plot": "loss.png",
            "command": "python run.py train " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else None,
        }

    def checkpoint(final: bool) -> None:
        save_train_state(out_dir, net, opt, {"step": step, "best_val": best, "history": history,
                                             "elapsed": elapsed0 + time.monotonic() - t_start})
        write_card(out_dir, card(final))

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
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, step)
            starts = torch.randint(0, len(train_ids) - cfg.seq_len - 1, (cfg.batch,), generator=gen)
            x, y = batch_from(train_ids, starts)
            logits, _ = net(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
            opt.step()
            step += 1
            tokens_done += x.numel()
            lv = loss.item()
            running = lv if running is None else 0.95 * running + 0.05 * lv
            if step % 10 == 0:
                history["train"].append((step, running))
            val = None
            if step % cfg.eval_every == 0 or step == cfg.steps:
                val = evaluate()
                history["val"].append((step, val))
                if val < best - 1e-4:
                    best, since_best = val, 0
                    save_weights(net, out_dir / "model.safetensors")
                else:
                    since_best += 1
            if cfg.keep_every and step % cfg.keep_every == 0:
                keep()
            rate = tokens_done / max(1e-9, time.monotonic() - t_start)
            progress.show(step, running, val, rate, force=val is not None)
            if step % cfg.save_every == 0:
                checkpoint(False)
            if since_best >= cfg.patience:
                stop_reason = f"early stop: no better validation loss in {cfg.patience} evaluations"
                break
            if cfg.max_minutes and time.monotonic() - t_start > cfg.max_minutes * 60:
                stop_reason = f"time budget of {cfg.max_minutes:g} min"
                break
    except KeyboardInterrupt:
        stop_reason = "interrupted (Ctrl-C); resume with --resume"
        print("\ninterrupted: saving before exit", file=sys.stderr)
        if not (out_dir / "model.safetensors").exists():
            save_weights(net, out_dir / "model.safetensors")
        checkpoint(False)
        raise
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
