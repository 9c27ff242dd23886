"""The fused CPU step for recurrent models: pre-packed weights, one matrix product per layer.

Calling nn.LSTM once per token pays PyTorch's dispatch and allocation for every tiny operation;
here the first layer's input projection is folded into a (vocab × gates) lookup table (embedding
times W_ih plus both biases), and every later layer multiplies [x, h] by one packed matrix.

At batch 1 the step is bound by reading the weights (profile: ~85 % of a token's time is the
matrix products, the rest sampling), so the weights may be stored in fewer bytes:
- "fp32": numpy/OpenBLAS, the reference;
- "fp16": fbgemm's packed fp16 weights with fp32 activations (F16C on any AVX2 CPU): half the
  bytes, rows independent of their batch-mates up to rounding, like fp32;
- "int8": fbgemm's dynamic int8 (per-channel weights, activations quantized per call): a quarter
  of the bytes. fbgemm quantizes the whole batch with one scale, which would make a stream's text
  depend on its batch-mates; so each row is first divided by its own max-abs and two fixed
  columns [-1, 1] (with zero weights) are appended to every row: the quantization range is then
  always [-1, 1], the int32 sums are exact, and a row's result is the same alone or batched, bit
  for bit. (A fixed extra *row* did the same at the cost of one more row of products: 1/17 of
  the int8 work at 16 streams, where the step is compute-bound.)
bf16 is not offered: on CPUs without AVX512-BF16 (this one: AMD Zen 2) torch emulates it and it is
slower than fp32.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from performance.textgen.nets import RNNLM

PRECISIONS = ("fp32", "fp16", "int8")
# fbgemm's packed calls cost ~0.5 ms whatever the size (measured, 1 thread): a matrix smaller than
# this (1 MB in fp32) stays fp32, where it is cheap and the byte saving does not matter.
MIN_PACKED = 1 << 18


def _sigmoid(x: np.ndarray) -> np.ndarray:
    y = np.array(x, np.float32)
    _sigmoid_inplace(y, simd=False)
    return y


# The gate nonlinearities were most of a batched step's time: numpy's float32 tanh costs ~3 ns
# an element here (AVX2; no SIMD tanh), 16 streams × 2 layers × 5H elements a token. torch's
# sigmoid is SIMD (~1 ns), and tanh(a) = 2·sigmoid(2a) − 1, with the 2 folded into the weights of
# the tanh gates when they are packed, so a layer needs two sigmoid calls and no tanh.
# torch's loops run a scalar tail when a row's length is not a multiple of its vector width; a
# stream's values would then depend on its batch-mates, so that path is taken only when every
# row length is a multiple of 16 (hidden % 16 == 0), else numpy's tanh computes the same algebra.
SIMD_ROW = 16


def _sigmoid_inplace(a: np.ndarray, simd: bool) -> None:
    if simd:
        torch.from_numpy(a).sigmoid_()
        return
    np.multiply(a, 0.5, out=a)
    np.tanh(a, out=a)
    a += 1.0
    a *= 0.5


def _tanh_from_sigmoid(a: np.ndarray) -> None:
    """a holds sigmoid(2x); make it tanh(x) in place."""
    a *= 2.0
    a -= 1.0


class Dense:
    """x @ W + b for float32 rows x (B, K), with W held in the chosen precision.

    `bounded`: every input lies in [-1, 1] (a recurrent layer's hidden state: o·tanh(c), or a GRU's
    mix of tanh values), so int8 needs no per-row rescale: the range columns alone fix fbgemm's
    range at [-1, 1]. A hidden state's largest unit is near ±1 in practice, so the resolution is
    about the rescaled one, and three passes over the batch a call are saved."""

    def __init__(self, w_kn: np.ndarray, bias: np.ndarray | None, precision: str = "fp32",
                 bounded: bool = False) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
        self.k, self.n = w_kn.shape
        self.bounded = bounded
        if self.k * self.n < MIN_PACKED:
            precision = "fp32"
        self.precision = precision
        self.bias = None if bias is None else np.ascontiguousarray(bias, np.float32)
        self._rows: dict[int, np.ndarray] = {}
        if precision == "fp32":
            self.w = np.ascontiguousarray(w_kn, np.float32)
            self.nbytes = self.w.nbytes
            return
        w = torch.from_numpy(np.ascontiguousarray(w_kn.T, np.float32))  # (N, K) as nn.Linear
        b = torch.zeros(self.n) if bias is None else torch.from_numpy(self.bias)
        if precision == "int8":
            b = None  # added after the per-row rescale
            w = torch.cat([w, torch.zeros(self.n, 2)], dim=1)  # the two range columns weigh nothing
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if precision == "fp16":
                self.packed = torch.ops.quantized.linear_prepack_fp16(w, b)
                self.nbytes = w.numel() * 2
            else:
                scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
                qw = torch.quantize_per_channel(w, scale, torch.zeros(self.n, dtype=torch.long), 0, torch.qint8)
                self.packed = torch.ops.quantized.linear_prepack(qw, b)
                self.nbytes = w.numel() + 8 * self.n

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.precision == "fp32":
            y = x @ self.w
            return y if self.bias is None else y + self.bias
        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        if self.precision == "fp16":
            return torch.ops.quantized.linear_dynamic_fp16(xt, self.packed).numpy()
        rows = x.shape[0]
        xs = self._rows.get(rows)
        if xs is None:  # one buffer per batch size, every row ending in the range columns [-1, 1]
            xs = self._rows[rows] = np.zeros((rows, self.k + 2), np.float32)
            xs[:, self.k:] = (-1.0, 1.0)
        body = xs[:, :self.k]
        if self.bounded:
            body[...] = x
            y = torch.ops.quantized.linear_dynamic(torch.from_numpy(xs), self.packed, True).numpy()
        else:
            np.abs(x, out=body)
            s = body.max(axis=1, keepdims=True)
            np.maximum(s, 1e-30, out=s)  # an all-zero row stays zero
            np.divide(x, s, out=body)
            y = torch.ops.quantized.linear_dynamic(torch.from_numpy(xs), self.packed, True).numpy()
            y *= s
        if self.bias is not None:
            y += self.bias
        return y

    @property
    def flops_per_row(self) -> int:
        return 2 * self.k * self.n


@dataclass
class FusedRNN:
    cell: str
    hidden: int
    table: np.ndarray  # (V, G): embedding @ W_ih0.T + biases (a lookup: one row read per token)
    h0: Dense  # layer 0: h @ W_hh0.T (+ b_hh0 for GRU)
    xh: list[Dense]  # LSTM layers > 0: [x, h] @ [W_ih; W_hh].T + both biases; GRU: h @ W_hh.T + b_hh
    gru_ih: list[Dense]  # GRU layers > 0: x @ W_ih.T + b_ih (the n gate needs x and h parts apart)
    head: Dense
    proj: Dense | None
    precision: str = "fp32"
    _dense: list[Dense] = field(default_factory=list, repr=False)

    @classmethod
    def from_module(cls, net: RNNLM, precision: str = "fp32") -> FusedRNN:
        with torch.no_grad():
            f = lambda t: t.detach().float().cpu().numpy().astype(np.float32)  # noqa: E731
            rnn = net.rnn
            emb = f(net.embed.weight)
            layers = rnn.num_layers
            w_ih0, w_hh0 = f(rnn.weight_ih_l0), f(rnn.weight_hh_l0)
            b_ih0, b_hh0 = f(rnn.bias_ih_l0), f(rnn.bias_hh_l0)
            cell = net.cell
            H = rnn.hidden_size
            # the rows of the tanh gate (LSTM g, GRU n) doubled: tanh(a) = 2 sigmoid(2a) - 1 (exact in
            # float, and per-channel int8 scales absorb it exactly)
            twice = np.ones((4 if cell == "lstm" else 3) * H, np.float32)
            twice[-H:] = 2.0
            if cell == "lstm":  # gates reordered i, f, o, g: one sigmoid over all 4H columns
                order = np.concatenate([np.arange(0, 2 * H), np.arange(3 * H, 4 * H), np.arange(2 * H, 3 * H)])
                w_ih0, w_hh0 = w_ih0[order] * twice[:, None], w_hh0[order] * twice[:, None]
                b_ih0, b_hh0 = b_ih0[order] * twice, b_hh0[order] * twice
                table = emb @ w_ih0.T + b_ih0 + b_hh0
                h0 = Dense(w_hh0.T, None, precision, bounded=True)
            else:  # GRU keeps b_hh apart: r multiplies (W_hn h + b_hn)
                w_ih0, w_hh0, b_ih0, b_hh0 = (w_ih0 * twice[:, None], w_hh0 * twice[:, None], b_ih0 * twice,
                                              b_hh0 * twice)
                table = emb @ w_ih0.T + b_ih0
                h0 = Dense(w_hh0.T, b_hh0, precision, bounded=True)
            xh, gru_ih = [], []
            for layer in range(1, layers):
                wi, wh = f(getattr(rnn, f"weight_ih_l{layer}")), f(getattr(rnn, f"weight_hh_l{layer}"))
                bi, bh = f(getattr(rnn, f"bias_ih_l{layer}")), f(getattr(rnn, f"bias_hh_l{layer}"))
                if cell == "lstm":
                    wi, wh, bi, bh = wi[order], wh[order], bi[order], bh[order]
                wi, wh, bi, bh = wi * twice[:, None], wh * twice[:, None], bi * twice, bh * twice
                if cell == "lstm":
                    xh.append(Dense(np.concatenate([wi, wh], axis=1).T, bi + bh, precision, bounded=True))
                else:
                    xh.append(Dense(wh.T, bh, precision, bounded=True))
                    gru_ih.append(Dense(wi.T, bi, precision, bounded=True))
            # the last hidden state is bounded; a tied model's projection of it is not
            proj = (Dense(f(net.proj.weight).T, f(net.proj.bias), precision, bounded=True)
                    if net.proj is not None else None)
            head = Dense(f(net.head.weight).T, f(net.head.bias), precision, bounded=net.proj is None)
            fused = cls(cell, rnn.hidden_size, np.ascontiguousarray(table), h0, xh, gru_ih, head, proj, precision)
            fused._dense = [h0, *xh, *gru_ih, *([proj] if proj else []), head]
            return fused

    @property
    def layers(self) -> int:
        return 1 + len(self.xh)

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights one step reads whatever the batch (plus one table row per stream)."""
        return sum(d.nbytes for d in self._dense)

    @property
    def flops_per_token(self) -> int:
        return sum(d.flops_per_row for d in self._dense)

    def zero_state(self, batch: int) -> list[np.ndarray]:
        n = 2 if self.cell == "lstm" else 1
        return [np.zeros((batch, self.hidden), np.float32) for _ in range(self.layers * n)]

    @staticmethod
    def stack_states(states: list[list[np.ndarray]]) -> list[np.ndarray]:
        return [np.concatenate(parts, axis=0) for parts in zip(*states, strict=True)]

    def step(self, ids: np.ndarray, state: list[np.ndarray]) -> np.ndarray:
        """Advance every row of `state` (updated in place) by one token; return logits (B, V)."""
        H = self.hidden
        simd = H % SIMD_ROW == 0
        if self.cell == "lstm":
            x = None
            for layer in range(self.layers):
                h, c = state[2 * layer], state[2 * layer + 1]
                if layer == 0:
                    g = self.table[ids]
                    g += self.h0(h)
                else:
                    g = self.xh[layer - 1](np.concatenate([x, h], axis=1))
                _sigmoid_inplace(g, simd)  # i, f, o and sigmoid(2 g)
                t = g[:, 3 * H:]
                _tanh_from_sigmoid(t)
                t *= g[:, :H]
                c *= g[:, H:2 * H]
                c += t
                np.multiply(c, 2.0, out=h)  # h = o * tanh(c)
                _sigmoid_inplace(h, simd)
                _tanh_from_sigmoid(h)
                h *= g[:, 2 * H:3 * H]
                x = h
        else:
            x = None
            for layer in range(self.layers):
                h = state[layer]
                if layer == 0:
                    gi = self.table[ids]
                    gh = self.h0(h)
                else:
                    gi = self.gru_ih[layer - 1](x)
                    gh = self.xh[layer - 1](h)
                rz = gi[:, :2 * H]
                rz += gh[:, :2 * H]
                _sigmoid_inplace(rz, simd)
                r, z = rz[:, :H], rz[:, H:]
                n = np.multiply(r, gh[:, 2 * H:])  # r (W_hn h + b_hn), doubled with the n rows
                n += gi[:, 2 * H:]
                _sigmoid_inplace(n, simd)
                _tanh_from_sigmoid(n)
                h -= n  # h' = (1 - z) n + z h = n + z (h - n)
                h *= z
                h += n
                x = h
        if self.proj is not None:
            x = self.proj(x)
        return self.head(x)




@dataclass
class FusedQRNN:
    """The QRNN's CPU step. A width-2 convolution splits into a part for x_t and a part for
    x_{t-1}; the x_{t-1} part is computed once, when x_{t-1} arrives, and carried in the state as
    partial gates. Layer 0 reads both parts from (vocab × 3H) lookup tables, so its step is two
    row lookups; each later layer is one matrix product of x by [W_cur; W_prev].
    State per layer: (partial gates from x_{t-1} (B, 3H), c (B, H))."""

    hidden: int
    table_cur: np.ndarray  # (V, 3H): embedding @ W_cur.T + bias
    table_prev: np.ndarray  # (V, 3H): embedding @ W_prev.T
    w: list[np.ndarray]  # per later layer (in, 6H): [W_cur.T | W_prev.T]
    b: list[np.ndarray]  # per later layer (3H,)
    head_w: np.ndarray
    head_b: np.ndarray
    proj_w: np.ndarray | None
    proj_b: np.ndarray | None
    cell: str = "qrnn"
    precision: str = "fp32"  # reduced precision is the LSTM/GRU step's (its matrices are the big ones)

    @classmethod
    def from_module(cls, net) -> FusedQRNN:
        with torch.no_grad():
            f = lambda t: t.detach().float().cpu().numpy().astype(np.float32)  # noqa: E731
            emb = f(net.embed.weight)
            first = net.layers[0]
            w0, b0 = f(first.linear.weight), f(first.linear.bias)
            n = first.inp
            table_cur = emb @ w0[:, n:].T + b0
            table_prev = emb @ w0[:, :n].T
            ws, bs = [], []
            for layer in list(net.layers)[1:]:
                w, b = f(layer.linear.weight), f(layer.linear.bias)
                k = layer.inp
                ws.append(np.ascontiguousarray(np.concatenate([w[:, k:].T, w[:, :k].T], axis=1)))
                bs.append(b)
            proj_w = f(net.proj.weight).T.copy() if net.proj is not None else None
            proj_b = f(net.proj.bias) if net.proj is not None else None
            return cls(first.hidden, np.ascontiguousarray(table_cur), np.ascontiguousarray(table_prev), ws, bs,
                       np.ascontiguousarray(f(net.head.weight).T), f(net.head.bias), proj_w, proj_b)

    @property
    def layers(self) -> int:
        return 1 + len(self.w)

    @property
    def table(self) -> np.ndarray:
        """The layer-0 lookup for x_t (the bench counts one row of each table per token)."""
        return self.table_cur

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights one step reads whatever the batch, plus the x_{t-1} table's row."""
        mats = [*self.w, self.head_w, *([self.proj_w] if self.proj_w is not None else [])]
        return sum(m.nbytes for m in mats) + self.table_prev.shape[1] * 4

    @property
    def flops_per_token(self) -> int:
        mats = [*self.w, self.head_w, *([self.proj_w] if self.proj_w is not None else [])]
        return sum(2 * m.shape[0] * m.shape[1] for m in mats)

    def zero_state(self, batch: int) -> list[np.ndarray]:
        H = self.hidden
        out = []
        for _ in range(self.layers):
            out += [np.zeros((batch, 3 * H), np.float32), np.zeros((batch, H), np.float32)]
        return out

    @staticmethod
    def stack_states(states: list[list[np.ndarray]]) -> list[np.ndarray]:
        return [np.concatenate(parts, axis=0) for parts in zip(*states, strict=True)]

    def step(self, ids: np.ndarray, state: list[np.ndarray]) -> np.ndarray:
        """Advance every row of `state` (updated in place) by one token; return logits (B, V)."""
        H = self.hidden
        x = None
        for layer in range(self.layers):
            gp, c = state[2 * layer], state[2 * layer + 1]
            if layer == 0:
                g = self.table_cur[ids] + gp
                gp[:] = self.table_prev[ids]
            else:
                both = x @ self.w[layer - 1]
                g = both[:, :3 * H] + self.b[layer - 1] + gp
                gp[:] = both[:, 3 * H:]
            z, f_, o = np.tanh(g[:, :H]), _sigmoid(g[:, H:2 * H]), _sigmoid(g[:, 2 * H:])
            c[:] = f_ * c + (1 - f_) * z
            x = o * c
        if self.proj_w is not None:
            x = x @ self.proj_w + self.proj_b
        return x @ self.head_w + self.head_b
