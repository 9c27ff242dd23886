"""X-ray streams: the same tokens as the plain streams, plus what the model was thinking.

Each x-ray token also carries `top` (the k likeliest tokens with their probabilities, most likely
first) and, for neural kinds, `unit` (the activation of one watched hidden unit). The plain streams
are untouched: a scene that does not ask for x-ray opens a plain stream and pays nothing per token.

What is measured, exactly:
- top: softmax(logits / T) over the whole vocabulary (T <= 0: the untempered model, as for p),
  before top-k/top-p truncation, so a performer sees what the model weighed, not what it was allowed.
- unit: recurrent kinds, the last layer's hidden state h; transformers, the residual stream after
  block `layer` (default the last) at the newest position. In both it is the state that predicted
  the token it is reported with.
- neuron "auto": the unit whose activation varied most over the previous x-ray poem of that model
  (for the first poem, over a short calibration walk from seed 0).
"""

from __future__ import annotations

import numpy as np
import torch

from performance.textgen.base import AUTO, Token, XraySpec
from performance.textgen.neural import NeuralGenerator, RNNStream, TransformerStream, sample_row

CALIBRATION_TOKENS = 200
__all__ = ["AUTO", "XraySpec", "start_xray", "top_of", "markov_top", "transformer_forward"]


def top_of(logits: np.ndarray, temperature: float, k: int, piece) -> tuple[tuple[str, float], ...]:
    """The k likeliest entries of softmax(logits / T) as (text, p), most likely first."""
    z = logits.astype(np.float64, copy=False)
    t = temperature if temperature > 0 else 1.0
    z = (z - z.max()) / t
    e = np.exp(z)
    probs = e / e.sum()
    k = min(k, probs.size)
    idx = np.argpartition(-probs, k - 1)[:k]
    idx = idx[np.argsort(-probs[idx], kind="stable")]
    return tuple((piece(int(i)), float(probs[i])) for i in idx)


class _UnitStats:
    """Running mean and variance of every unit (for neuron = "auto")."""

    def __init__(self, width: int) -> None:
        self.n = 0
        self.sum = np.zeros(width, np.float64)
        self.sq = np.zeros(width, np.float64)

    def add(self, h: np.ndarray) -> None:
        self.n += 1
        self.sum += h
        self.sq += h * h

    def most_varied(self) -> int:
        mean = self.sum / max(1, self.n)
        return int(np.argmax(self.sq / max(1, self.n) - mean * mean))


def _choose_unit(gen, spec: XraySpec, width: int) -> int | None:
    """The unit a new stream watches; AUTO takes what the last poem (or a calibration) found."""
    if spec.neuron is None:
        return None
    if spec.neuron != AUTO:
        return min(max(0, spec.neuron), width - 1)
    last = getattr(gen, "_xray_last", None)
    if last is not None and last.stats.n >= 20:
        gen._xray_auto = last.stats.most_varied()
    if getattr(gen, "_xray_auto", None) is None:
        probe = _open(gen, 0, "", XraySpec(1, 0, spec.layer), calibrating=True)
        for _ in range(CALIBRATION_TOKENS):
            probe.next(1.0)
        gen._xray_auto = probe.stats.most_varied()
    return gen._xray_auto


class _Watch:
    """Shared by the x-ray streams: the spec, the watched unit, the statistics for auto."""

    spec: XraySpec
    unit_index: int | None
    stats: _UnitStats

    def _setup(self, spec: XraySpec, width: int, calibrating: bool) -> None:
        self.spec = spec
        self.stats = _UnitStats(width)
        if calibrating:
            self.unit_index = 0
        else:
            self.unit_index = _choose_unit(self.gen, spec, width)
            self.gen._xray_last = self

    def set_unit(self, unit: int | None) -> None:
        """Watch another unit from the next token on (the /lectern/neuron command)."""
        width = self.stats.sum.size
        self.unit_index = None if unit is None else min(max(0, unit), width - 1)

    def _unit(self, h: np.ndarray) -> float | None:
        self.stats.add(h)
        return None if self.unit_index is None else float(h[self.unit_index])


class XrayRNNStream(RNNStream, _Watch):
    """An RNN stream that also reports top-k and the last layer's hidden unit."""

    def __init__(self, gen: NeuralGenerator, seed: int, prompt: str, spec: XraySpec, calibrating: bool = False) -> None:
        super().__init__(gen, seed, prompt)
        self._h = -2 if gen.fused.cell == "lstm" else -1
        self._setup(spec, gen.fused.hidden, calibrating)

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        logits = self.gen.fused.step(np.array([self.last]), self.state)[0]
        unit = self._unit(self.state[self._h][0])
        if self.echo:
            i = self.echo.pop(0)
            self.last = i
            return Token(self.text.piece(i), 1.0, temperature, None, unit)
        top = top_of(logits, temperature, self.spec.k, self._piece)
        i, p = sample_row(logits, temperature, top_k, top_p, self.rng)
        self.last = i
        return Token(self.text.piece(i), p, temperature, top, unit)

    def _piece(self, i: int) -> str:
        return self.gen.tok.piece(i, self.text.tail)


def transformer_forward(net, x: torch.Tensor, caches: list, offset: int, layer: int):
    """TransformerLM.forward that also returns the residual stream after block `layer`."""
    t = x.shape[1]
    pos = torch.arange(offset, offset + t, device=x.device)
    h = net.tok(x) + net.pos(pos)
    layer = layer % len(net.blocks)
    kept = h
    for i, blk in enumerate(net.blocks):
        h = blk(h, caches[i])
        if i == layer:
            kept = h
    return net.head(net.ln(h)), kept


class XrayTransformerStream(TransformerStream, _Watch):
    """A transformer stream that also reports top-k and one residual-stream channel."""

    def __init__(self, gen: NeuralGenerator, seed: int, prompt: str, spec: XraySpec, calibrating: bool = False) -> None:
        self.spec = spec
        super().__init__(gen, seed, prompt)
        self._setup(spec, gen.net.tok.weight.shape[1], calibrating)

    @torch.inference_mode()
    def _prime(self, ids: list[int]) -> None:
        net = self.gen.net
        ids = ids[-net.context:]
        self.history = list(ids)
        self.caches = [[] for _ in net.blocks]
        x = torch.tensor([ids], dtype=torch.long, device=self.gen.device)
        logits, h = transformer_forward(net, x, self.caches, 0, self.spec.layer)
        self.logits = logits[0, -1].float().cpu().numpy()
        self.hidden = h[0, -1].float().cpu().numpy()

    @torch.inference_mode()
    def _feed(self, i: int) -> None:
        net = self.gen.net
        if len(self.history) >= net.context:
            self._prime(self.history[-net.context // 2:] + [i])
            return
        x = torch.tensor([[i]], dtype=torch.long, device=self.gen.device)
        logits, h = transformer_forward(net, x, self.caches, len(self.history), self.spec.layer)
        self.history.append(i)
        self.logits = logits[0, -1].float().cpu().numpy()
        self.hidden = h[0, -1].float().cpu().numpy()

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        unit = self._unit(self.hidden)
        if self.echo:
            i = self.echo.pop(0)
            self._feed(i)
            return Token(self.text.piece(i), 1.0, temperature, None, unit)
        top = top_of(self.logits, temperature, self.spec.k, lambda j: self.gen.tok.piece(j, self.text.tail))
        i, p = sample_row(self.logits, temperature, top_k, top_p, self.rng)
        self._feed(i)
        return Token(self.text.piece(i), p, temperature, top, unit)


def _open(gen, seed: int, prompt: str, spec: XraySpec, calibrating: bool = False):
    if gen.fused is not None:
        return XrayRNNStream(gen, seed, prompt, spec, calibrating)
    return XrayTransformerStream(gen, seed, prompt, spec, calibrating)


def markov_top(gen, history: list[int], temperature: float, k: int, tail: str) -> tuple[tuple[str, float], ...]:
    """The chain's k likeliest next words after `history` (counts ** (1/T), normalised)."""
    ids, counts = gen.transitions(history)
    inv = 1.0 / temperature if temperature > 0 else 1.0
    w = np.asarray(counts, np.float64) ** inv
    w /= w.sum()
    order = sorted(range(len(ids)), key=lambda j: (-w[j], ids[j]))[:k]
    return tuple((gen.tok.piece(ids[j], tail), float(w[j])) for j in order)


class XrayMarkovStream:
    """A Markov stream whose tokens carry the chain's top-k (a chain has no hidden unit)."""

    def __init__(self, stream, spec: XraySpec) -> None:
        self.inner = stream
        self.spec = spec

    def set_unit(self, unit: int | None) -> None:
        """A chain has no units: ignored."""

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        s = self.inner
        top = None if s.echo else markov_top(s.gen, s.history, temperature, self.spec.k, s.tail)
        tok = s.next(temperature, top_k, top_p)
        return Token(tok.text, tok.p, tok.temperature, top, None)


def start_xray(gen, seed: int, prompt: str, spec: XraySpec):
    """Open an x-ray stream on any generator: neural kinds give top-k and a unit, Markov its top-k,
    other kinds (and kinds that fill `top` themselves, like served models) their plain stream."""
    if isinstance(gen, NeuralGenerator):
        return _open(gen, seed, prompt, spec)
    if getattr(gen, "kind", "") == "markov":
        return XrayMarkovStream(gen.start(seed, prompt), spec)
    opener = getattr(gen, "start_xray", None)
    if opener is not None:
        return opener(seed, prompt, spec)
    return gen.start(seed, prompt)
