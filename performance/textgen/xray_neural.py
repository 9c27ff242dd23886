"""X-ray streams of the neural kinds (see xray.py for what is measured): top-k and one hidden unit.

Recurrent kinds watch the last layer's h (read from the fused step's state: no change to the step
itself); transformers re-run their forward here to keep the residual stream of the chosen block.
"""

from __future__ import annotations

import numpy as np
import torch

from performance.textgen.base import AUTO, Token, XraySpec
from performance.textgen.neural import NeuralGenerator, RNNStream, TransformerStream, ban_runs, sample_row
from performance.textgen.xray import top_of

CALIBRATION_TOKENS = 400


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
        gen._xray_auto = _calibrate(gen, spec.layer)
    return gen._xray_auto


CALIBRATION_TEXT = ("The sea is calm tonight.\nThe tide is full, the moon lies fair\nUpon the straits; \"on the French "
                    "coast the light\nGleams and is gone\"; the cliffs of England stand,\nGlimmering and vast, out "
                    "in the tranquil bay.\n")


@torch.inference_mode()
def _calibrate(gen, layer: int) -> int:
    """The unit that varies most over the model's own card sample (or a stanza of verse), from
    one batched forward pass: a first poem's "auto" costs milliseconds, not a walk of tokens."""
    samples = (gen.card or {}).get("samples")
    texts = [v for v in samples.values() if isinstance(v, str)] if isinstance(samples, dict) else []
    ids = gen.tok.encode("\n".join(texts) or CALIBRATION_TEXT)[:CALIBRATION_TOKENS] or [0]
    x = torch.tensor([ids], dtype=torch.long, device=gen.device)
    if gen.fused is not None:
        h, _ = gen.net.rnn(gen.net.embed(x))
    else:
        _, h = transformer_forward(gen.net, x[:, -gen.net.context:], [[] for _ in gen.net.blocks], 0, layer)
    return int(torch.argmax(h[0].float().var(dim=0)))


class _Watch:
    """Shared by the x-ray streams: the spec, the watched unit, the statistics for auto."""

    spec: XraySpec
    unit_index: int | None
    stats: _UnitStats

    def _setup(self, spec: XraySpec, width: int) -> None:
        self.spec = spec
        self.stats = _UnitStats(width)
        self.unit_index = _choose_unit(self.gen, spec, width)
        self.gen._xray_last = self  # the generator's owner (the worker) is the only writer

    def set_unit(self, unit: int | None) -> None:
        """Watch another unit from the next token on (the /lectern/neuron command)."""
        width = self.stats.sum.size
        self.unit_index = None if unit is None else min(max(0, unit), width - 1)

    def _unit(self, h: np.ndarray) -> float | None:
        self.stats.add(h)
        return None if self.unit_index is None else float(h[self.unit_index])


class XrayRNNStream(RNNStream, _Watch):
    """An RNN stream that also reports top-k and the last layer's hidden unit."""

    def __init__(self, gen: NeuralGenerator, seed: int, prompt: str, spec: XraySpec) -> None:
        super().__init__(gen, seed, prompt)
        self._h = -2 if gen.fused.cell == "lstm" else -1
        self._setup(spec, gen.fused.hidden)

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        logits = self.gen.fused.step(np.array([self.last]), self.state)[0]
        unit = self._unit(self.state[self._h][0])
        if self.echo:
            i = self.echo.pop(0)
            self.last = i
            return Token(self.text.piece(i), 1.0, temperature, None, unit)
        top = top_of(logits, temperature, self.spec.k, self._piece)  # the model's own view, before the ban
        ban_runs(logits[None, :], [self])
        i, p = sample_row(logits, temperature, top_k, top_p, self.rng)
        self.last = i
        return Token(self.text.piece(i), p, temperature, top, unit)

    def _piece(self, i: int) -> str:
        return self.gen.tok.piece(i, self.text.tail)


def transformer_forward(net, x: torch.Tensor, caches: list, offset: int, layer: int):
    """TransformerLM.forward that also returns the residual stream after block `layer`."""
    h, rot = net.embed(x, offset)
    layer = layer % len(net.blocks)
    kept = h
    for i, blk in enumerate(net.blocks):
        h = blk(h, caches[i], rot)
        if i == layer:
            kept = h
    return net.head(net.ln(h)), kept


class XrayTransformerStream(TransformerStream, _Watch):
    """A transformer stream that also reports top-k and one residual-stream channel."""

    def __init__(self, gen: NeuralGenerator, seed: int, prompt: str, spec: XraySpec) -> None:
        self.spec = spec
        super().__init__(gen, seed, prompt)
        self._setup(spec, gen.net.tok.weight.shape[1])

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
            self.last = i
            self._feed(i)
            return Token(self.text.piece(i), 1.0, temperature, None, unit)
        top = top_of(self.logits, temperature, self.spec.k, lambda j: self.gen.tok.piece(j, self.text.tail))
        logits = self.logits.copy()  # the model's view above; the repeat ban only in the draw
        ban_runs(logits[None, :], [self])
        i, p = sample_row(logits, temperature, top_k, top_p, self.rng)
        self.last = i
        self._feed(i)
        return Token(self.text.piece(i), p, temperature, top, unit)


def open_neural(gen: NeuralGenerator, seed: int, prompt: str, spec: XraySpec):
    """An x-ray stream on a neural generator (recurrent or transformer)."""
    if gen.fused is not None:
        return XrayRNNStream(gen, seed, prompt, spec)
    return XrayTransformerStream(gen, seed, prompt, spec)


