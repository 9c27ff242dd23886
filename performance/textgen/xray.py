"""X-ray streams: the same tokens as the plain streams, plus what the model was thinking.

Each x-ray token also carries `top` (the k likeliest tokens with their probabilities, most likely
first) and, for neural kinds, `unit` (the activation of one watched hidden unit). The plain streams
are untouched: a scene that does not ask for x-ray opens a plain stream and pays nothing per token.

What is measured, exactly:
- top: softmax(logits / T) over the whole vocabulary (T <= 0: the untempered model, as for p),
  before top-k/top-p truncation, so a performer sees what the model weighed, not what it was allowed.
  Markov: counts ** (1/T), normalised, of the context the chain uses.
- unit: recurrent kinds, the last layer's hidden state h; transformers, the residual stream after
  block `layer` (default the last) at the newest position. In both it is the state that predicted
  the token it is reported with.
- neuron "auto": the unit whose activation varied most over the previous x-ray poem of that model
  (for the first poem, over the model's card samples in one batched forward pass).

This module imports no torch (a Markov x-ray must not wait for it); the neural streams live in
xray_neural.py.
"""

from __future__ import annotations

import numpy as np

from performance.textgen.base import AUTO, Token, XraySpec
from performance.textgen.kinds import kind

__all__ = ["AUTO", "XraySpec", "XrayMarkovStream", "markov_top", "start_xray", "top_of"]


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


def markov_top(gen, history: list[int], temperature: float, k: int, tail: str) -> tuple[tuple[str, float], ...]:
    """The chain's k likeliest next words after `history` (counts ** (1/T), normalised)."""
    o, a, b = gen._locate(history)
    # the chain's own cached distribution, likeliest first: (ids, cumulative weights, p of the first)
    ids, cum, _ = gen._distribution(o, a, b, temperature if temperature > 0 else 1.0, 0, 1.0, False)
    total = cum[-1]
    out, prev = [], 0.0
    for i, c in zip(ids[:k], cum[:k], strict=True):
        out.append((gen.tok.piece(i, tail), (c - prev) / total))
        prev = c
    return tuple(out)


class XrayMarkovStream:
    """A Markov stream whose tokens carry the chain's top-k (a chain has no hidden unit)."""

    def __init__(self, stream, spec: XraySpec) -> None:
        self.inner = stream
        self.spec = spec

    def set_unit(self, unit: int | None) -> None:
        """A chain has no units: ignored."""

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        s = self.inner
        tail = s.tail
        tok = s.next(temperature, top_k, top_p)
        # the state this token was drawn in (the guard draws a line ahead: not the stream's history now)
        ctx = s.drawn_after
        top = None if ctx is None else markov_top(s.gen, ctx, tok.temperature, self.spec.k, tail)
        return Token(tok.text, tok.p, tok.temperature, top, None)


def open_markov(gen, seed: int, prompt: str, spec: XraySpec) -> XrayMarkovStream:
    """The Markov kind's x-ray: its chain's own top-k for the state it is in."""
    return XrayMarkovStream(gen.start(seed, prompt), spec)


def start_xray(gen, seed: int, prompt: str, spec: XraySpec):
    """Open an x-ray stream on any generator: the kind's own opener from the registry (neural
    kinds give top-k and a unit, Markov its top-k), else a generator's own `start_xray` (served
    models fill `top` from logprobs), else its plain stream."""

    entry = kind(getattr(gen, "kind", ""))
    opener = entry.function("xray") if entry is not None else None
    if opener is not None and (not entry.neural or getattr(gen, "net", None) is not None):
        return opener(gen, seed, prompt, spec)
    own = getattr(gen, "start_xray", None)
    if own is not None:
        return own(seed, prompt, spec)
    return gen.start(seed, prompt)
