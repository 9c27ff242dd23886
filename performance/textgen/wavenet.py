"""The char-wavenet kind: stacks of dilated causal convolutions writing one character at a time.

Each block reads its input x twice, now and `dilation` steps ago (a causal convolution of width
2), splits the result into a tanh filter and a sigmoid gate, multiplies them, and sends the
product through two 1×1 convolutions: one added back onto x (residual), one summed into the skip
path that, after ReLU and two more 1×1 convolutions, gives the next character's logits. The
dilations double through a cycle (1, 2, 4 … max) that repeats `cycles` times; the receptive field
is 1 + the sum of the dilations.

Sampling keeps, for every block, a queue of its last `dilation` inputs (a circular buffer per
stream), so a new character costs one matrix product per block, whatever the receptive field.
`NaiveStream` recomputes the whole receptive field per character, as a plain convolutional
sampler would: the bench measures one against the other, and a test checks that both write the
same text from the same seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from performance.textgen.base import ModelFileError, Token
from performance.textgen.checkpoint import load_weights
from performance.textgen.neural import _prime_ids, _RunCount, _TextState, ban_runs, sample_rows
from performance.textgen.tokenizers import CharTokenizer

KIND = "char-wavenet"
# the card's hyperparameters that size the net, and their defaults
SIZES = {"residual": 48, "dilation_channels": 32, "skip": 96, "max_dilation": 256, "cycles": 2}


def dilations(max_dilation: int, cycles: int) -> list[int]:
    """1, 2, 4 … max_dilation, `cycles` times over (max_dilation is rounded down to a power of 2)."""
    one = [1 << i for i in range(max(1, int(max_dilation)).bit_length())]
    return one * max(1, int(cycles))


def receptive_field(max_dilation: int, cycles: int) -> int:
    return 1 + sum(dilations(max_dilation, cycles))


class Block(nn.Module):
    """One gated, dilated causal convolution with its residual and skip 1×1 convolutions."""

    def __init__(self, residual: int, dilation_channels: int, skip: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.conv = nn.Conv1d(residual, 2 * dilation_channels, kernel_size=2, dilation=dilation)
        self.res = nn.Conv1d(dilation_channels, residual, 1)
        self.skip = nn.Conv1d(dilation_channels, skip, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, residual, T) → (x + residual, skip contribution), both causal."""
        h = self.conv(F.pad(x, (self.dilation, 0)))  # the past before the text is zeros
        filt, gate = h.chunk(2, dim=1)
        z = torch.tanh(filt) * torch.sigmoid(gate)
        return x + self.res(z), self.skip(z)


class WaveNetLM(nn.Module):
    """Characters in, logits of the next character out, at every position."""

    def __init__(self, vocab: int, residual: int = 48, dilation_channels: int = 32, skip: int = 96,
                 max_dilation: int = 256, cycles: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, residual)
        self.blocks = nn.ModuleList(Block(residual, dilation_channels, skip, d)
                                    for d in dilations(max_dilation, cycles))
        self.out = nn.Conv1d(skip, skip, 1)
        self.head = nn.Conv1d(skip, vocab, 1)
        self.receptive_field = 1 + sum(b.dilation for b in self.blocks)

    def forward(self, ids: torch.Tensor, state=None) -> tuple[torch.Tensor, None]:
        """ids (B, T) → (logits (B, T, vocab), None): the neural trainer's (logits, state) shape."""
        x = self.embed(ids).transpose(1, 2)
        total = 0
        for block in self.blocks:
            x, s = block(x)
            total = total + s
        y = self.head(F.relu(self.out(F.relu(total))))
        return y.transpose(1, 2), None


def build_wavenet(hp: dict, vocab: int) -> WaveNetLM:
    sizes = {k: int(hp.get(k, v)) for k, v in SIZES.items()}
    for k, v in sizes.items():
        if not 1 <= v <= (1 << 14):
            raise ValueError(f"hyperparameter {k!r} = {v} must be a whole number 1..16384")
    return WaveNetLM(vocab, **sizes)


class Queues:
    """The fast sampler: the net's weights as numpy matrices, and per-block queues of past inputs.

    A state is (buffers, positions): buffers[l] is (B, dilation_l, residual), the inputs block l
    saw in its last dilation_l steps, slot t % dilation_l holding step t's; positions[b] is how
    many characters stream b has fed."""

    def __init__(self, net: WaveNetLM) -> None:
        def np_(t: torch.Tensor) -> np.ndarray:
            return t.detach().to("cpu", torch.float32).numpy().copy()

        self.table = np_(net.embed.weight)
        self.layers = []
        for b in net.blocks:
            w = np_(b.conv.weight)  # (2 dc, residual, 2): tap 0 reads t - dilation, tap 1 reads t
            both = np.concatenate([w[:, :, 0].T, w[:, :, 1].T], axis=0)  # (2 residual, 2 dc)
            rs = np.concatenate([np_(b.res.weight)[:, :, 0].T, np_(b.skip.weight)[:, :, 0].T], axis=1)
            rs_b = np.concatenate([np_(b.res.bias), np_(b.skip.bias)])
            self.layers.append((b.dilation, both, np_(b.conv.bias), rs, rs_b))
        self.residual = self.table.shape[1]
        self.dc = self.layers[0][2].shape[0] // 2
        self.out_w, self.out_b = np_(net.out.weight)[:, :, 0].T, np_(net.out.bias)
        self.head_w, self.head_b = np_(net.head.weight)[:, :, 0].T, np_(net.head.bias)

    def zero_state(self, batch: int) -> tuple[list[np.ndarray], np.ndarray]:
        bufs = [np.zeros((batch, d, self.residual), np.float32) for d, *_ in self.layers]
        return bufs, np.zeros(batch, np.int64)

    @staticmethod
    def stack_states(states: list) -> tuple[list[np.ndarray], np.ndarray]:
        bufs = [np.concatenate([s[0][i] for s in states]) for i in range(len(states[0][0]))]
        return bufs, np.concatenate([s[1] for s in states])

    def step(self, ids: np.ndarray, state) -> np.ndarray:
        """Feed one character per row; the logits (B, vocab) of the next. One product per block."""
        bufs, pos = state
        rows = np.arange(len(ids))
        x = self.table[ids]
        skip = 0.0
        dc, r = self.dc, self.residual
        for (d, both, b, rs, rs_b), buf in zip(self.layers, bufs, strict=True):
            slot = pos % d
            past = buf[rows, slot]
            buf[rows, slot] = x
            h = np.concatenate([past, x], axis=1) @ both + b
            z = np.tanh(h[:, :dc]) * (1.0 / (1.0 + np.exp(-h[:, dc:])))
            o = z @ rs + rs_b
            x = x + o[:, :r]
            skip = skip + o[:, r:]
        pos += 1
        y = np.maximum(np.maximum(skip, 0.0) @ self.out_w + self.out_b, 0.0)
        return y @ self.head_w + self.head_b


class WaveStream(_RunCount):
    """One stream on the queues: each character costs one step per block."""

    def __init__(self, gen: WaveNetGenerator, seed: int, prompt: str) -> None:
        self.gen = gen
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.text = _TextState(gen.tok)
        feed, self.echo = _prime_ids(gen.tok, prompt)
        self.state = gen.queues.zero_state(1)
        for i in feed[:-1]:
            gen.queues.step(np.array([i]), self.state)
        self.last = feed[-1]

    def logits(self) -> np.ndarray:
        """Feed the last character; the (1, vocab) logits of the next."""
        return self.gen.queues.step(np.array([self.last]), self.state)

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        logits = self.logits()
        if self.echo:
            i = self.echo.pop(0)
            self.last = i
            return Token(self.text.piece(i), 1.0, temperature)
        ban_runs(logits, [self])
        (i, p), = sample_rows(logits, [temperature], top_k, top_p, [self.rng])
        self.last = i
        return Token(self.text.piece(i), p, temperature)


class NaiveStream(WaveStream):
    """The same stream, recomputing the last receptive field of characters through the whole net
    for every new one (the bench's baseline; same draws as WaveStream)."""

    def __init__(self, gen: WaveNetGenerator, seed: int, prompt: str) -> None:
        self.gen = gen
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.text = _TextState(gen.tok)
        feed, self.echo = _prime_ids(gen.tok, prompt)
        self.history = list(feed[:-1])
        self.last = feed[-1]

    @torch.inference_mode()
    def logits(self) -> np.ndarray:
        self.history.append(self.last)
        del self.history[:-self.gen.net.receptive_field]
        x = torch.tensor([self.history], dtype=torch.long)
        return self.gen.net(x)[0][0, -1:].double().numpy()


class WaveBatch:
    """Several streams stepped together: one product per block for all of them."""

    def __init__(self, gen: WaveNetGenerator, seeds: list[int], prompts: list[str]) -> None:
        self.gen = gen
        self.streams = [WaveStream(gen, s, p) for s, p in zip(seeds, prompts, strict=True)]
        self.state = gen.queues.stack_states([s.state for s in self.streams])
        self._rngs = [s.rng for s in self.streams]

    def next(self, temperatures: list[float], top_k: int = 0, top_p: float = 1.0) -> list[Token]:
        streams = self.streams
        logits = self.gen.queues.step(np.array([s.last for s in streams]), self.state)
        ban_runs(logits, streams)
        rows = [b for b, s in enumerate(streams) if not s.echo]
        drawn = dict(zip(rows, sample_rows(logits[rows], [temperatures[b] for b in rows], top_k, top_p,
                                           [self._rngs[b] for b in rows]), strict=True)) if rows else {}
        out = []
        for b, s in enumerate(streams):
            i, p = (s.echo.pop(0), 1.0) if s.echo else drawn[b]
            s.last = i
            out.append(Token(s.text.piece(i), p, temperatures[b]))
        return out


class WaveNetGenerator:
    """A loaded char-wavenet."""

    def __init__(self, name: str, card: dict, net: WaveNetLM, tok: CharTokenizer) -> None:
        self.name = name
        self.kind = KIND
        self.card = card
        self.net = net.eval()
        self.tok = tok
        self.word_tokens = False
        self.queues = Queues(self.net)

    def start(self, seed: int, prompt: str = "") -> WaveStream:
        return WaveStream(self, seed, prompt)

    def start_naive(self, seed: int, prompt: str = "") -> NaiveStream:
        return NaiveStream(self, seed, prompt)

    def start_batch(self, seeds: list[int], prompts: list[str] | None = None) -> WaveBatch:
        return WaveBatch(self, seeds, prompts or [""] * len(seeds))


def load_wavenet(model_dir: Path, card: dict, device: str = "cpu") -> WaveNetGenerator:
    """Rebuild the net from its card and load its safetensors weights (sampling runs on the CPU)."""
    try:
        vocab = card["vocab"]
        if not isinstance(vocab, list) or not vocab or not all(isinstance(v, str) and len(v) == 1 for v in vocab):
            raise ValueError("vocab must be a non-empty list of single characters")
        if len(set(vocab)) != len(vocab):
            raise ValueError("vocab holds the same entry twice")
        net = build_wavenet(dict(card["hyperparameters"]), len(vocab))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(f"{model_dir / 'model.json'}: incomplete or inconsistent card ({e})") from None
    load_weights(net, model_dir / "model.safetensors", device="cpu", kind=KIND)
    return WaveNetGenerator(model_dir.name, card, net, CharTokenizer(vocab))
