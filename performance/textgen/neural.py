"""Neural generators behind the one interface: streams of tokens with their probabilities.

On CPU the recurrent kinds step through `fused.FusedRNN` (numpy, pre-packed weights, one matrix
product per layer) instead of calling nn.LSTM per token; the transformer decodes with its KV cache.
Sampling is numpy with one seeded generator per stream, so a stream's text depends only on model,
seed and temperatures — alone or in a batch.

p of a token is its probability under the distribution it was drawn from (after temperature,
top-k, top-p). At temperature 0 (argmax) that distribution is one-hot, so p is reported under the
untempered model instead, which keeps surprise (−log p) meaningful for sonification.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from performance.textgen.base import ModelFileError, Token
from performance.textgen.checkpoint import load_weights
from performance.textgen.fused import PRECISIONS, FusedQRNN, FusedRNN
from performance.textgen.nets import QRNNLM, RNNLM, TransformerLM, build_net
from performance.textgen.tokenizers import CharTokenizer, WordTokenizer, make_tokenizer


def sample_row(logits: np.ndarray, temperature: float, top_k: int, top_p: float, rng: np.random.Generator) -> tuple[int, float]:
    """Draw one index from logits (1-D float array). Returns (index, probability)."""
    logits = logits.astype(np.float64, copy=False)
    m = logits.max()
    if temperature <= 0:
        i = int(np.argmax(logits))
        e = np.exp(logits - m)
        return i, float(e[i] / e.sum())
    z = (logits - m) / temperature
    probs = np.exp(z)
    if top_k and 0 < top_k < probs.size:
        kth = np.partition(probs, -top_k)[-top_k]
        probs = np.where(probs >= kth, probs, 0.0)
    probs /= probs.sum()
    if top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cum = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cum, top_p) + 1)]
        mask = np.zeros_like(probs)
        mask[keep] = probs[keep]
        probs = mask / mask.sum()
    cdf = np.cumsum(probs)
    i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    i = min(i, probs.size - 1)
    while probs[i] == 0.0 and i > 0:  # never land on a zeroed entry through rounding
        i -= 1
    return i, float(probs[i])


def sample_rows(logits: np.ndarray, temperatures: list[float], top_k: int, top_p: float,
                rngs: list[np.random.Generator]) -> list[tuple[int, float]]:
    """Draw one index per row of `logits` (B, V), each row from its own generator: one vectorized
    softmax and cumulative sum for the whole batch instead of a dozen numpy calls per row. Same
    draws as `sample_row` (one uniform per row, inverse CDF). Top-k/top-p and temperature 0 go row
    by row through `sample_row`."""
    if top_k or top_p < 1.0 or min(temperatures) <= 0:
        return [sample_row(logits[b], temperatures[b], top_k, top_p, rngs[b]) for b in range(len(rngs))]
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    z /= np.asarray(temperatures, np.float64)[:, None]
    probs = np.exp(z, out=z)
    probs /= probs.sum(axis=1, keepdims=True)
    cdf = np.cumsum(probs, axis=1)
    u = np.array([r.random() for r in rngs]) * cdf[:, -1]
    idx = np.minimum((cdf <= u[:, None]).sum(axis=1), probs.shape[1] - 1)
    picked = probs[np.arange(len(rngs)), idx]
    if picked.all():
        return list(zip(idx.tolist(), picked.tolist(), strict=True))
    out = []
    for b, i in enumerate(idx.tolist()):
        while probs[b, i] == 0.0 and i > 0:  # never land on an entry that underflowed to zero
            i -= 1
        out.append((i, float(probs[b, i])))
    return out


class _TextState:
    """What the stream needs to turn ids back into text pieces."""

    def __init__(self, tok: CharTokenizer | WordTokenizer) -> None:
        self.tok = tok
        self.tail = ""

    def piece(self, i: int) -> str:
        text = self.tok.piece(i, self.tail)
        self.tail = (self.tail + text)[-8:]
        return text


def _prime_ids(tok: CharTokenizer | WordTokenizer, prompt: str) -> tuple[list[int], list[int]]:
    """(ids fed to warm the state, ids of the prompt echoed as the poem's first tokens)."""
    prompt_ids = tok.encode(prompt, warn=True) if prompt else []
    newline = tok.index.get("\n")
    start = [newline] if newline is not None else [0]
    return start + prompt_ids, prompt_ids


# A token drawn this many times running is not drawn again next: the shipped word GRU, at T 0.7,
# once wrote a dash and then 3,000 more ("- - - -", an attractor of its recurrent state), and a
# char model can do the same with a letter. Three in a row stays possible (stanza breaks, "...").
MAX_RUN = 3


def ban_runs(logits: np.ndarray, streams: list) -> None:
    """Set -inf, in place, on each row's last token where its stream has drawn it MAX_RUN times
    running (row b of `logits` belongs to streams[b])."""
    for b, s in enumerate(streams):
        if s.run >= MAX_RUN:
            logits[b, s.last] = -np.inf


class _RunCount:
    """A stream's last token and how many times running it came (what ban_runs reads)."""

    run = 0
    _last = -1

    @property
    def last(self) -> int:
        """The last token fed (the next step's input)."""
        return self._last

    @last.setter
    def last(self, i: int) -> None:
        self.run = self.run + 1 if i == self._last else 1
        self._last = i


class RNNStream(_RunCount):
    """One stream on the fused CPU step."""

    def __init__(self, gen: NeuralGenerator, seed: int, prompt: str) -> None:
        self.gen = gen
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.text = _TextState(gen.tok)
        feed, self.echo = _prime_ids(gen.tok, prompt)
        self.state = gen.fused.zero_state(1)
        for i in feed[:-1]:
            gen.fused.step(np.array([i]), self.state)
        self.last = feed[-1]

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        if self.echo:
            i = self.echo.pop(0)
            self.gen.fused.step(np.array([self.last]), self.state)
            self.last = i
            return Token(self.text.piece(i), 1.0, temperature)
        logits = self.gen.fused.step(np.array([self.last]), self.state)
        ban_runs(logits, [self])
        (i, p), = sample_rows(logits, [temperature], top_k, top_p, [self.rng])
        self.last = i
        return Token(self.text.piece(i), p, temperature)


class RNNBatch:
    """Several RNN streams stepped together: one matrix product per layer for all of them."""

    def __init__(self, gen: NeuralGenerator, seeds: list[int], prompts: list[str]) -> None:
        self.streams = [RNNStream(gen, s, p) for s, p in zip(seeds, prompts, strict=True)]
        self.gen = gen
        self.state = gen.fused.stack_states([s.state for s in self.streams])
        self._rngs = [s.rng for s in self.streams]

    def next(self, temperatures: list[float], top_k: int = 0, top_p: float = 1.0) -> list[Token]:
        streams = self.streams
        logits = self.gen.fused.step(np.array([s.last for s in streams]), self.state)
        ban_runs(logits, streams)
        if not any(s.echo for s in streams):  # the usual step: every stream draws
            out = []
            for s, (i, p), t in zip(streams, sample_rows(logits, temperatures, top_k, top_p, self._rngs),
                                    temperatures, strict=True):
                s.last = i
                out.append(Token(s.text.piece(i), p, t))
            return out
        rows = [b for b, s in enumerate(streams) if not s.echo]
        drawn = dict(zip(rows, sample_rows(logits[rows], [temperatures[b] for b in rows], top_k, top_p,
                                           [self._rngs[b] for b in rows]), strict=True)) if rows else {}
        out = []
        for b, s in enumerate(self.streams):
            if s.echo:
                i = s.echo.pop(0)
                s.last = i
                out.append(Token(s.text.piece(i), 1.0, temperatures[b]))
                continue
            i, p = drawn[b]
            s.last = i
            out.append(Token(s.text.piece(i), p, temperatures[b]))
        return out


class TransformerStream(_RunCount):
    """One stream decoding with the KV cache; re-primes from the last half context when full."""

    def __init__(self, gen: NeuralGenerator, seed: int, prompt: str) -> None:
        self.gen = gen
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.text = _TextState(gen.tok)
        feed, self.echo = _prime_ids(gen.tok, prompt)
        self.history: list[int] = []
        self._prime(feed)

    @torch.inference_mode()
    def _prime(self, ids: list[int]) -> None:
        net: TransformerLM = self.gen.net
        ids = ids[-net.context:]
        self.history = list(ids)
        self.caches = [[] for _ in net.blocks]
        x = torch.tensor([ids], dtype=torch.long, device=self.gen.device)
        logits, _ = net(x, self.caches, 0)
        self.logits = logits[0, -1].float().cpu().numpy()

    @torch.inference_mode()
    def _feed(self, i: int) -> None:
        net: TransformerLM = self.gen.net
        if len(self.history) >= net.context:
            self._prime(self.history[-net.context // 2:] + [i])
            return
        x = torch.tensor([[i]], dtype=torch.long, device=self.gen.device)
        logits, _ = net(x, self.caches, len(self.history))
        self.history.append(i)
        self.logits = logits[0, -1].float().cpu().numpy()

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        if self.echo:
            i = self.echo.pop(0)
            self.last = i
            self._feed(i)
            return Token(self.text.piece(i), 1.0, temperature)
        logits = self.logits.copy()
        ban_runs(logits[None, :], [self])
        i, p = sample_row(logits, temperature, top_k, top_p, self.rng)
        self.last = i
        self._feed(i)
        return Token(self.text.piece(i), p, temperature)


class _StreamsBatch:
    def __init__(self, streams: list) -> None:
        self.streams = streams

    def next(self, temperatures: list[float], top_k: int = 0, top_p: float = 1.0) -> list[Token]:
        return [s.next(t, top_k, top_p) for s, t in zip(self.streams, temperatures, strict=True)]


class NeuralGenerator:
    """A loaded neural model (any of the six neural kinds)."""

    def __init__(self, name: str, kind: str, card: dict, net: torch.nn.Module, tok, device: str = "cpu",
                 precision: str | None = None) -> None:
        self.name = name
        self.kind = kind
        self.card = card
        self.net = net.eval()
        self.tok = tok
        self.device = device
        self.word_tokens = kind.startswith("word")
        self.fused = None
        if isinstance(net, RNNLM):
            self.fused = FusedRNN.from_module(net, self._precision(precision))
        elif isinstance(net, QRNNLM):
            self.fused = FusedQRNN.from_module(net)

    def _precision(self, asked: str | None) -> str:
        """The fused step's weight precision: `asked` (a flag), else the card's `cpu_precision`, else
        fp32. Bad values name the card key and what is allowed."""

        p = asked or self.card.get("cpu_precision", "fp32")
        if p not in PRECISIONS:
            src = "--precision" if asked else f"model {self.name}: card key cpu_precision"
            raise ModelFileError(f"{src} is {p!r}; allowed: {', '.join(PRECISIONS)}")
        return p

    def set_precision(self, precision: str) -> None:
        """Re-pack the fused step's weights in `precision` (fp32, fp16 or int8)."""
        if self.fused is not None and isinstance(self.net, RNNLM):
            self.fused = FusedRNN.from_module(self.net, self._precision(precision))

    def start(self, seed: int, prompt: str = ""):
        if self.fused is not None:
            return RNNStream(self, seed, prompt)
        return TransformerStream(self, seed, prompt)

    def start_batch(self, seeds: list[int], prompts: list[str] | None = None):
        prompts = prompts or [""] * len(seeds)
        if self.fused is not None:
            return RNNBatch(self, seeds, prompts)
        return _StreamsBatch([TransformerStream(self, s, p) for s, p in zip(seeds, prompts, strict=True)])


MAX_MODEL_BYTES = 4 << 30  # weights of one model, whatever the machine has


def estimate_parameters(hp: dict, vocab: int) -> int:
    """About how many parameters build_net(hp, vocab) will allocate (within a few per cent), from the
    card alone: cheap, where building on torch's meta device costs seconds the first time."""
    h, layers = int(hp.get("hidden", 1)), int(hp.get("layers", 1))
    if str(hp["kind"]).endswith("transformer"):
        return vocab * h + int(hp.get("context", 1)) * h + layers * (12 * h * h + 13 * h) + 2 * h + h * vocab
    e = int(hp.get("embed", 1))
    gates = 4 if str(hp["kind"]).endswith("lstm") else 3
    rnn = sum(gates * h * ((e if i == 0 else h) + h + 2) for i in range(layers))
    return vocab * e + rnn + h * vocab + vocab


def memory_budget() -> int:
    """Bytes a model's weights may take: half the memory free now, at most MAX_MODEL_BYTES."""
    try:
        with open("/proc/meminfo") as f:
            info = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in f if ln.split()[1:2]}
        free = info.get("MemAvailable", info.get("MemFree", 0))
    except (OSError, ValueError, IndexError):
        free = 2 * MAX_MODEL_BYTES
    return min(MAX_MODEL_BYTES, free // 2)


def trained_context(hp: dict) -> int:
    """The positions a transformer trained: its context, or less when it trained on shorter
    windows (models made before training used the whole context)."""
    return min(int(hp["context"]), int(hp.get("seq_len") or hp["context"]))


def card_warnings(card: dict) -> list[str]:
    """What `check` should say about a neural card that loads but is not as it should be."""
    hp = card.get("hyperparameters") or {}
    out = []
    if str(card.get("kind", "")).endswith("transformer") and "context" in hp and trained_context(hp) < hp["context"]:
        out.append(f"context {hp['context']} but trained on windows of {hp['seq_len']}: positions "
                   f"{hp['seq_len']}-{hp['context'] - 1} never trained; the sampler keeps to {hp['seq_len']} "
                   "(retrain with --seq-len equal to the context)")
    return out


def _vocab_fits_kind(kind: str, vocab: list[str]) -> None:
    """A char model's vocabulary is single characters; a word model's holds words. The weights of
    one under the other's kind have the same shapes and load, then write nonsense: refuse them."""
    if kind.startswith("char"):
        long = next((v for v in vocab if len(v) > 1), None)
        if long is not None:
            raise ValueError(f"kind {kind!r} reads single characters, but the vocab holds {long[:20]!r} and "
                             f"{sum(len(v) > 1 for v in vocab) - 1} more longer entries (a word model's vocab: "
                             "kind word-...?)")
    elif all(len(v) == 1 for v in vocab):
        raise ValueError(f"kind {kind!r} reads words, but the vocab is {len(vocab)} single characters "
                         "(a char model's weights and vocab: kind char-...?)")


def load_neural(model_dir: Path, card: dict, device: str = "cpu") -> NeuralGenerator:
    """Rebuild the network from its card and load its safetensors weights (never a pickle)."""
    card_path = model_dir / "model.json"
    try:
        kind = card["kind"]
        hp = dict(card["hyperparameters"])
        hp["kind"] = kind
        vocab = card["vocab"]
        if not isinstance(vocab, list) or not vocab or not all(isinstance(v, str) and v for v in vocab):
            raise ValueError("vocab must be a non-empty list of non-empty strings")
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocab holds the same entry twice")
        _vocab_fits_kind(kind, vocab)
        for k in ("embed", "hidden", "layers", "heads", "context"):
            v = hp.get(k, 1)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 16:
                raise ValueError(f"hyperparameter {k!r} = {v!r} must be a whole number 1..65536")
        need = 4 * estimate_parameters(hp, len(vocab))  # before anything is allocated
        have = memory_budget()
        if need > have:
            raise ValueError(f"the network needs {need / 2**20:.0f} MB; at most {have / 2**20:.0f} MB may be used "
                             f"on this machine (half its free memory, capped at {MAX_MODEL_BYTES / 2**30:.0f} GB)")
        net = build_net(hp, len(vocab))
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        raise ModelFileError(f"{card_path}: incomplete or inconsistent card ({e})") from None
    load_weights(net, model_dir / "model.safetensors", device="cpu", kind=kind)
    if isinstance(net, TransformerLM):
        # positions past the training window never learned anything: sample within the window
        net.context = trained_context(hp)
    net.to(device)
    return NeuralGenerator(model_dir.name, kind, card, net, make_tokenizer(kind, vocab), device=device)


def step_streams(streams: list[RNNStream], temperatures: list[float], top_k: int = 0,
                 top_p: float = 1.0) -> list[Token]:
    """One token for each of several independent RNN streams of the same model, with one matrix
    product per layer for all of them. Each keeps its own random generator, so its text is the
    same as when it runs alone."""
    gen = streams[0].gen
    state = gen.fused.stack_states([s.state for s in streams])
    logits = gen.fused.step(np.array([s.last for s in streams]), state)
    ban_runs(logits, streams)
    out = []
    drawn = sample_rows(logits, temperatures, top_k, top_p, [s.rng for s in streams])
    for b, s in enumerate(streams):
        for mine, stacked in zip(s.state, state, strict=True):
            mine[0] = stacked[b]
        i, p = drawn[b]
        s.last = i
        out.append(Token(s.text.piece(i), p, temperatures[b]))
    return out
