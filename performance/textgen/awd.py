"""AWD-LSTM's regularisers (Merity et al. 2017, salesforce/awd-lstm-lm) for small corpora.

Every one of them acts only while training: weight drop (DropConnect on the hidden-to-hidden
matrices, redrawn each batch), embedding dropout (whole vocabulary rows), locked (variational)
dropout (one mask per sequence, the same at every time step), AR and TAR penalties, and NT-ASGD's
non-monotone trigger. In eval mode the network is the plain one, so the fused CPU sampler and the
checkpoint format are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class AWDConfig:
    """The regularisation a recurrent network trains with (all 0 = the plain network)."""

    wdrop: float = 0.0  # DropConnect on hidden-to-hidden weights
    dropoute: float = 0.0  # embedding dropout: whole rows of the vocabulary
    dropouti: float = 0.0  # locked dropout on the embedding output
    dropouth: float = 0.0  # locked dropout between recurrent layers
    dropout: float = 0.0  # locked dropout on the last layer's output
    alpha: float = 0.0  # AR: alpha * mean(dropped output ** 2)
    beta: float = 0.0  # TAR: beta * mean((h_t - h_{t-1}) ** 2) on the undropped output

    @property
    def active(self) -> bool:
        return any((self.wdrop, self.dropoute, self.dropouti, self.dropouth, self.dropout, self.alpha, self.beta))


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout with one mask per sequence, shared by every time step. x: (batch, time, features)."""
    if not training or p <= 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


def embedding_dropout(weight: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """The embedding matrix with whole rows (words or characters) dropped, the rest scaled up."""
    if not training or p <= 0:
        return weight
    mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
    return weight * mask


def weight_drop(w: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """DropConnect: each weight zeroed with probability p (scaled), one draw per forward pass."""
    if not training or p <= 0:
        return w
    return F.dropout(w, p, training=True)


def ar_tar(dropped: torch.Tensor, raw: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Activation regularisation on the dropped last-layer output and temporal activation
    regularisation on the raw one (slowness between time steps)."""
    loss = dropped.new_zeros(())
    if alpha:
        loss = loss + alpha * dropped.pow(2).mean()
    if beta and raw.shape[1] > 1:
        loss = loss + beta * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
    return loss


class NTTrigger:
    """NT-ASGD's non-monotone trigger: averaging starts at the first evaluation whose loss is worse
    than the best of the evaluations before the last `nonmono` ones (awd-lstm-lm's main.py:
    `len(best_val_loss) > nonmono and val_loss > min(best_val_loss[:-nonmono])`)."""

    def __init__(self, nonmono: int) -> None:
        self.nonmono = nonmono
        self.history: list[float] = []
        self.fired_at: int | None = None  # index of the evaluation that fired (0-based)

    def update(self, val: float) -> bool:
        """Record one validation loss; True exactly once, when averaging must begin."""
        fire = (self.nonmono > 0 and self.fired_at is None and len(self.history) > self.nonmono
                and val > min(self.history[:-self.nonmono]))
        if fire:
            self.fired_at = len(self.history)
        self.history.append(val)
        return fire


class WeightAverage:
    """The running mean of the parameters since averaging began (ASGD's ax)."""

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.params = params
        self.avg = [p.detach().clone() for p in params]
        self.n = 1

    @torch.no_grad()
    def update(self) -> None:
        self.n += 1
        for a, p in zip(self.avg, self.params, strict=True):
            a.add_(p.detach() - a, alpha=1.0 / self.n)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the live and the averaged weights (call twice to go back)."""
        for a, p in zip(self.avg, self.params, strict=True):
            tmp = p.detach().clone()
            p.copy_(a)
            a.copy_(tmp)
