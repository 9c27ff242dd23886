"""The neural architectures: a recurrent LM (LSTM or GRU) and a small decoder-only transformer.

Both are plain nn.Modules used for training and as the reference path; fast sampling on CPU uses
the fused step in fused.py, and the transformer's decode uses its KV cache.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class RNNLM(nn.Module):
    """Embedding → LSTM/GRU stack → linear head (optionally tied to the embedding)."""

    def __init__(self, cell: str, vocab: int, embed: int, hidden: int, layers: int, dropout: float = 0.0,
                 tie: bool = False) -> None:
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

    def forward(self, x: torch.Tensor, state=None):
        h, state = self.rnn(self.drop(self.embed(x)), state)
        h = self.drop(h)
        if self.proj is not None:
            h = self.proj(h)
        return self.head(h), state


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

    def forward(self, x: torch.Tensor, cache: list | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        hd = d // self.heads
        q, k, v = (z.view(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
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
                 tie: bool = True) -> None:
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(_Block(d, heads, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.drop = nn.Dropout(dropout)
        if tie:
            self.head.weight = self.tok.weight
        for name, p in self.named_parameters():
            if name.endswith("out.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers))

    def forward(self, x: torch.Tensor, caches: list | None = None, offset: int = 0):
        t = x.shape[1]
        pos = torch.arange(offset, offset + t, device=x.device)
        h = self.drop(self.tok(x) + self.pos(pos))
        for i, blk in enumerate(self.blocks):
            h = blk(h, caches[i] if caches is not None else None)
        return self.head(self.ln(h)), caches


def build_net(hp: dict, vocab: int) -> nn.Module:
    """Rebuild a network from the card's hyperparameters."""
    kind = hp["kind"]
    if kind.endswith("transformer"):
        return TransformerLM(vocab, hp["hidden"], hp["heads"], hp["layers"], hp["context"], hp.get("dropout", 0.0),
                             hp.get("tie", True))
    cell = "lstm" if kind.endswith("lstm") else "gru"
    return RNNLM(cell, vocab, hp["embed"], hp["hidden"], hp["layers"], hp.get("dropout", 0.0), hp.get("tie", False))
