"""The neural architectures: a recurrent LM (LSTM or GRU), a QRNN LM and a small decoder-only
transformer.

All are plain nn.Modules used for training and as the reference path; fast sampling on CPU uses
the fused steps in fused.py, and the transformer's decode uses its KV cache. The recurrent kinds
train with AWD-LSTM's regularisers (awd.py) when their card asks; in eval mode they are the plain
networks, so checkpoints and the fused samplers do not change.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from performance.textgen.awd import AWDConfig, ar_tar, embedding_dropout, locked_dropout, weight_drop

_RNN_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class RNNLM(nn.Module):
    """Embedding → LSTM/GRU stack → linear head (optionally tied to the embedding)."""

    def __init__(self, cell: str, vocab: int, embed: int, hidden: int, layers: int, dropout: float = 0.0,
                 tie: bool = False, awd: AWDConfig | None = None) -> None:
        super().__init__()
        self.cell = cell
        self.embed = nn.Embedding(vocab, embed)
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(embed, hidden, layers, dropout=dropout if layers > 1 else 0.0, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden, embed) if tie and hidden != embed else None
        self.head = nn.Linear(embed if tie else hidden, vocab)
        if tie:
            self.head.weight = self.embed.weight
            # a tied matrix is also the output layer: N(0, 1) rows would give logits of size
            # sqrt(embed) and a first loss far above ln(vocab) (AWD-LSTM starts it at ±0.1)
            nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        self.awd = awd if awd is not None and awd.active else None
        self.reg_loss = torch.zeros(())  # AR/TAR of the last training forward pass
        # one-layer twins, unregistered (a plain list): the AWD path runs layer by layer through
        # them with this network's own parameters, so the state dict stays nn.LSTM's
        self._layer_twins = [rnn_cls(embed if i == 0 else hidden, hidden, 1, batch_first=True) for i in range(layers)] \
            if self.awd else []

    def forward(self, x: torch.Tensor, state=None):
        if self.awd is not None and self.training:
            return self._forward_awd(x, state)
        h, state = self.rnn(self.drop(self.embed(x)), state)
        h = self.drop(h)
        if self.proj is not None:
            h = self.proj(h)
        return self.head(h), state

    def _forward_awd(self, x: torch.Tensor, state=None):
        a = self.awd
        h = F.embedding(x, embedding_dropout(self.embed.weight, a.dropoute, True))
        h = locked_dropout(h, a.dropouti, True)
        layers = self.rnn.num_layers
        outs: list = []
        raw = h
        for i in range(layers):
            params = {f"{n}_l0": getattr(self.rnn, f"{n}_l{i}") for n in _RNN_PARAMS}
            params["weight_hh_l0"] = weight_drop(params["weight_hh_l0"], a.wdrop, True)
            if state is None:
                st = None
            elif self.cell == "lstm":
                st = (state[0][i:i + 1], state[1][i:i + 1])
            else:
                st = state[i:i + 1]
            raw, st = functional_call(self._layer_twins[i], params, (h, st))
            outs.append(st)
            h = locked_dropout(raw, a.dropouth, True) if i < layers - 1 else raw
        out = locked_dropout(raw, a.dropout, True)
        self.reg_loss = ar_tar(out, raw, a.alpha, a.beta)
        if self.cell == "lstm":
            new_state = (torch.cat([s[0] for s in outs]), torch.cat([s[1] for s in outs]))
        else:
            new_state = torch.cat(outs)
        if self.proj is not None:
            out = self.proj(out)
        return self.head(out), new_state


class QRNNLayer(nn.Module):
    """A quasi-recurrent layer (Bradbury et al. 2016, as in awd-lstm-lm): a causal convolution of
    width 2 gives the candidate z, forget f and output o gates for every step at once; fo-pooling
    c_t = f_t c_{t-1} + (1 - f_t) z_t, h_t = o_t c_t is the only sequential part.
    State: (x_{t-1}, c_t)."""

    def __init__(self, inp: int, hidden: int) -> None:
        super().__init__()
        self.inp, self.hidden = inp, hidden
        self.linear = nn.Linear(2 * inp, 3 * hidden)  # [x_{t-1}, x_t] -> z, f, o

    def forward(self, x: torch.Tensor, state=None, wdrop: float = 0.0):
        b, t, _ = x.shape
        if state is None:
            prev = x.new_zeros(b, 1, self.inp)
            c = x.new_zeros(b, self.hidden)
        else:
            prev, c = state[0][:, None, :], state[1]
        shifted = torch.cat([prev, x[:, :-1]], dim=1)
        w = weight_drop(self.linear.weight, wdrop, self.training)
        g = F.linear(torch.cat([shifted, x], dim=2), w, self.linear.bias)
        z, f, o = g.chunk(3, dim=2)
        z, f, o = torch.tanh(z), torch.sigmoid(f), torch.sigmoid(o)
        zf = (1 - f) * z
        cs = []
        for k in range(t):
            c = f[:, k] * c + zf[:, k]
            cs.append(c)
        h = o * torch.stack(cs, dim=1)
        return h, (x[:, -1], c)


class QRNNLM(nn.Module):
    """Embedding → QRNN stack → linear head, with the same AWD regularisers as RNNLM (weight drop
    on the convolution's weights)."""

    def __init__(self, vocab: int, embed: int, hidden: int, layers: int, dropout: float = 0.0,
                 tie: bool = False, awd: AWDConfig | None = None) -> None:
        super().__init__()
        self.cell = "qrnn"
        self.embed = nn.Embedding(vocab, embed)
        self.layers = nn.ModuleList(QRNNLayer(embed if i == 0 else hidden, hidden) for i in range(layers))
        self.dropout = dropout
        self.proj = nn.Linear(hidden, embed) if tie and hidden != embed else None
        self.head = nn.Linear(embed if tie else hidden, vocab)
        if tie:
            self.head.weight = self.embed.weight
            nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        self.awd = awd if awd is not None and awd.active else AWDConfig(dropout=dropout, dropouth=dropout)
        self.reg_loss = torch.zeros(())

    def forward(self, x: torch.Tensor, state=None):
        a, tr = self.awd, self.training
        h = F.embedding(x, embedding_dropout(self.embed.weight, a.dropoute, tr))
        h = locked_dropout(h, a.dropouti, tr)
        new_state = []
        raw = h
        for i, layer in enumerate(self.layers):
            raw, st = layer(h, state[i] if state is not None else None, a.wdrop if tr else 0.0)
            new_state.append(st)
            h = locked_dropout(raw, a.dropouth, tr) if i < len(self.layers) - 1 else raw
        out = locked_dropout(raw, a.dropout, tr)
        if tr:
            self.reg_loss = ar_tar(out, raw, a.alpha, a.beta)
        if self.proj is not None:
            out = self.proj(out)
        return self.head(out), new_state


POSITIONS = ("rope", "learned")


def _rotate(z: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding (RoFormer): pairs (z_i, z_{i+hd/2}) turned by angle pos * f_i."""
    half = z.shape[-1] // 2
    z1, z2 = z[..., :half], z[..., half:]
    return torch.cat([z1 * cos - z2 * sin, z1 * sin + z2 * cos], dim=-1)


class _Block(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(dropout)
        self.heads = heads

    def forward(self, x: torch.Tensor, cache: list | None = None,
                rot: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        hd = d // self.heads
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        if rot is not None:  # rotary positions: q and k turned by their absolute position
            q, k = _rotate(q, *rot), _rotate(k, *rot)
        if cache is not None:
            if cache:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        causal = cache is None or t > 1
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal and k.shape[2] == t,
                                           dropout_p=self.drop.p if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, t, d)
        x = x + self.drop(self.out(y))
        return x + self.drop(self.mlp(self.ln2(x)))


class TransformerLM(nn.Module):
    """A nanoGPT-sized decoder-only transformer with learned positions and an optional KV cache."""

    def __init__(self, vocab: int, d: int, heads: int, layers: int, context: int, dropout: float = 0.0,
                 tie: bool = True, positions: str = "learned") -> None:
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"positions {positions!r}; allowed: {', '.join(POSITIONS)}")
        self.context = context
        self.positions = positions
        self.tok = nn.Embedding(vocab, d)
        # Rotary positions (the default for new models) learn far faster on a small corpus than a
        # learned position table, whose N(0, 0.02) start leaves attention blind to order for
        # hundreds of steps: 2.13 against 2.43 nats/char train loss after 100 steps of 32 x 128
        # (this corpus, 4 x 256, 1 CPU thread). Models trained before keep their table.
        self.pos = nn.Embedding(context, d) if positions == "learned" else None
        hd = d // heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        self.register_buffer("inv_freq", inv, persistent=False)  # rebuilt from the card, never saved
        self.blocks = nn.ModuleList(_Block(d, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.drop = nn.Dropout(dropout)
        # nanoGPT's initialisation: every matrix and embedding N(0, 0.02), biases 0, the residual
        # projections scaled by 1/sqrt(2 * layers). Tied, the head then starts near ln(vocab) too
        # (PyTorch's default N(0, 1) embedding made a tied head's first loss about 155).
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)
        if tie:
            self.head.weight = self.tok.weight
        for name, p in self.named_parameters():
            if name.endswith("out.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))

    def embed(self, x: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, tuple | None]:
        """Token (and learned position) embeddings of x at positions offset.., and the rotary
        (cos, sin) for those positions (None for a learned table)."""
        t = x.shape[1]
        pos = torch.arange(offset, offset + t, device=x.device)
        h = self.tok(x)
        if self.pos is not None:
            return h + self.pos(pos), None
        ang = pos.to(torch.float32)[:, None] * self.inv_freq[None, :]
        return h, (ang.cos().to(h.dtype), ang.sin().to(h.dtype))

    def forward(self, x: torch.Tensor, caches: list | None = None, offset: int = 0):
        h, rot = self.embed(x, offset)
        h = self.drop(h)
        for i, blk in enumerate(self.blocks):
            h = blk(h, caches[i] if caches is not None else None, rot)
        return self.head(self.ln(h)), caches


def build_net(hp: dict, vocab: int) -> nn.Module:
    """Rebuild a network from the card's hyperparameters."""
    kind = hp["kind"]
    if kind.endswith("transformer"):
        return TransformerLM(vocab, hp["hidden"], hp["heads"], hp["layers"], hp["context"], hp.get("dropout", 0.0),
                             hp.get("tie", True), hp.get("positions", "learned"))
    awd = AWDConfig(**hp["awd"]) if hp.get("awd") else None
    if kind.endswith("qrnn"):
        return QRNNLM(vocab, hp["embed"], hp["hidden"], hp["layers"], hp.get("dropout", 0.0), hp.get("tie", False), awd)
    cell = "lstm" if kind.endswith("lstm") else "gru"
    return RNNLM(cell, vocab, hp["embed"], hp["hidden"], hp["layers"], hp.get("dropout", 0.0), hp.get("tie", False),
                 awd)
