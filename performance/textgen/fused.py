"""The fused CPU step for recurrent models: pre-packed numpy weights, one matrix product per layer.

Calling nn.LSTM once per token pays PyTorch's dispatch and allocation for every tiny operation;
here the first layer's input projection is folded into a (vocab × gates) lookup table (embedding
times W_ih plus both biases), and every later layer multiplies [x, h] by one packed matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from performance.textgen.nets import RNNLM


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


@dataclass
class FusedRNN:
    cell: str
    hidden: int
    table: np.ndarray  # (V, G): embedding @ W_ih0.T + biases
    w_h0: np.ndarray  # (H, G): W_hh0.T
    w_xh: list[np.ndarray]  # per later layer (2H, G): [W_ih; W_hh].T
    b: list[np.ndarray]  # per later layer (G,)
    gru_hh_b: list[np.ndarray]  # GRU: b_hh per layer (needed inside the reset gate)
    gru_w_ih: list[np.ndarray]  # GRU: W_ih.T for layers > 0 (the n gate needs x and h parts apart)
    head_w: np.ndarray  # (H or E, V)
    head_b: np.ndarray
    proj_w: np.ndarray | None
    proj_b: np.ndarray | None

    @classmethod
    def from_module(cls, net: RNNLM) -> FusedRNN:
        with torch.no_grad():
            f = lambda t: t.detach().float().cpu().numpy().astype(np.float32)  # noqa: E731
            rnn = net.rnn
            emb = f(net.embed.weight)
            layers = rnn.num_layers
            H = rnn.hidden_size
            w_ih0, w_hh0 = f(rnn.weight_ih_l0), f(rnn.weight_hh_l0)
            b_ih0, b_hh0 = f(rnn.bias_ih_l0), f(rnn.bias_hh_l0)
            cell = net.cell
            if cell == "lstm":
                table = emb @ w_ih0.T + b_ih0 + b_hh0
            else:  # GRU keeps b_hh apart: r multiplies (W_hn h + b_hn)
                table = emb @ w_ih0.T + b_ih0
            w_xh, bs, hh_b, w_ih_list = [], [], [b_hh0], []
            for layer in range(1, layers):
                wi, wh = f(getattr(rnn, f"weight_ih_l{layer}")), f(getattr(rnn, f"weight_hh_l{layer}"))
                bi, bh = f(getattr(rnn, f"bias_ih_l{layer}")), f(getattr(rnn, f"bias_hh_l{layer}"))
                if cell == "lstm":
                    w_xh.append(np.ascontiguousarray(np.concatenate([wi, wh], axis=1).T))
                    bs.append(bi + bh)
                else:
                    w_xh.append(np.ascontiguousarray(wh.T))
                    w_ih_list.append(np.ascontiguousarray(wi.T))
                    bs.append(bi)
                    hh_b.append(bh)
            proj_w = f(net.proj.weight).T.copy() if net.proj is not None else None
            proj_b = f(net.proj.bias) if net.proj is not None else None
            return cls(cell, H, np.ascontiguousarray(table), np.ascontiguousarray(w_hh0.T), w_xh, bs, hh_b,
                       w_ih_list, np.ascontiguousarray(f(net.head.weight).T), f(net.head.bias), proj_w, proj_b)

    @property
    def layers(self) -> int:
        return 1 + len(self.w_xh)

    def zero_state(self, batch: int) -> list[np.ndarray]:
        n = 2 if self.cell == "lstm" else 1
        return [np.zeros((batch, self.hidden), np.float32) for _ in range(self.layers * n)]

    @staticmethod
    def stack_states(states: list[list[np.ndarray]]) -> list[np.ndarray]:
        return [np.concatenate(parts, axis=0) for parts in zip(*states, strict=True)]

    def step(self, ids: np.ndarray, state: list[np.ndarray]) -> np.ndarray:
        """Advance every row of `state` (updated in place) by one token; return logits (B, V)."""
        H = self.hidden
        if self.cell == "lstm":
            x = None
            for layer in range(self.layers):
                h, c = state[2 * layer], state[2 * layer + 1]
                if layer == 0:
                    g = self.table[ids] + h @ self.w_h0
                else:
                    g = np.concatenate([x, h], axis=1) @ self.w_xh[layer - 1] + self.b[layer - 1]
                i, f_, gg, o = _sigmoid(g[:, :H]), _sigmoid(g[:, H:2 * H]), np.tanh(g[:, 2 * H:3 * H]), _sigmoid(g[:, 3 * H:])
                c[:] = f_ * c + i * gg
                h[:] = o * np.tanh(c)
                x = h
        else:
            x = None
            for layer in range(self.layers):
                h = state[layer]
                if layer == 0:
                    gi = self.table[ids]
                    gh = h @ self.w_h0 + self.gru_hh_b[0]
                else:
                    gi = x @ self.gru_w_ih[layer - 1] + self.b[layer - 1]
                    gh = h @ self.w_xh[layer - 1] + self.gru_hh_b[layer]
                r = _sigmoid(gi[:, :H] + gh[:, :H])
                z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
                n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
                h[:] = (1 - z) * n + z * h
                x = h
        if self.proj_w is not None:
            x = x @ self.proj_w + self.proj_b
        return x @ self.head_w + self.head_b


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
