"""A Llama decoder in plain torch, with the module names of `transformers`' LlamaForCausalLM.

Lectern's own forward pass for the pretrained kind: training (with peft's LoRA layers injected
into these same modules) and sampling (with a key/value cache, one token a step) run this code,
so what trained is what plays. The parameter names are transformers' (model.layers.N.self_attn.
q_proj ...), so a transformers state dict loads as is, a peft adapter's keys are the ones
llama.cpp's converters expect, and tests/textgen compares the logits with transformers' own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class LlamaShape:
    """The sizes a Llama checkpoint needs (transformers' LlamaConfig field names)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_config(cls, cfg: dict) -> LlamaShape:
        """From a transformers config dict (rope_theta at the top or under rope_parameters)."""
        theta = cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta") or 10000.0
        keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        return cls(**{k: int(cfg[k]) for k in keys},
                   num_key_value_heads=int(cfg.get("num_key_value_heads") or cfg["num_attention_heads"]),
                   rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-5)), rope_theta=float(theta),
                   tie_word_embeddings=bool(cfg.get("tie_word_embeddings", True)))


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 as transformers does."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Attention(nn.Module):
    """Grouped-query attention with rotary positions; `past` is this layer's (keys, values)."""

    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        d, h, kv = s.head_dim, s.num_attention_heads, s.num_key_value_heads
        self.heads, self.kv_heads, self.dim = h, kv, d
        self.q_proj = nn.Linear(s.hidden_size, h * d, bias=False)
        self.k_proj = nn.Linear(s.hidden_size, kv * d, bias=False)
        self.v_proj = nn.Linear(s.hidden_size, kv * d, bias=False)
        self.o_proj = nn.Linear(h * d, s.hidden_size, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                past: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, tuple]:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if past is not None:
            k, v = torch.cat((past[0], k), dim=2), torch.cat((past[1], v), dim=2)
        rep = self.heads // self.kv_heads
        kk, vv = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if past is None or t == 1:  # a fresh window is causal; one new token sees all the past
            out = F.scaled_dot_product_attention(q, kk, vv, is_causal=past is None and t > 1)
        else:  # several new tokens after a past: each sees the past and the new ones before it
            n = kk.shape[2]
            mask = torch.ones(t, n, dtype=torch.bool, device=x.device).tril(n - t)
            out = F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask)
        out = out.transpose(1, 2).reshape(b, t, self.heads * self.dim)
        return self.o_proj(out), (k, v)


class MLP(nn.Module):
    """SwiGLU feed-forward."""

    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(s.hidden_size, s.intermediate_size, bias=False)
        self.up_proj = nn.Linear(s.hidden_size, s.intermediate_size, bias=False)
        self.down_proj = nn.Linear(s.intermediate_size, s.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    """One pre-norm decoder block."""

    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)
        self.self_attn = Attention(s)
        self.post_attention_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)
        self.mlp = MLP(s)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, past: tuple | None):
        a, kv = self.self_attn(self.input_layernorm(x), cos, sin, past)
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), kv


class _Body(nn.Module):
    def __init__(self, s: LlamaShape) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(s.vocab_size, s.hidden_size)
        self.layers = nn.ModuleList(Layer(s) for _ in range(s.num_hidden_layers))
        self.norm = RMSNorm(s.hidden_size, s.rms_norm_eps)


class LlamaNet(nn.Module):
    """The decoder; `forward(ids, past)` returns (logits, new past). past: one (k, v) per layer."""

    def __init__(self, shape: LlamaShape) -> None:
        super().__init__()
        self.shape = shape
        self.model = _Body(shape)
        self.lm_head = nn.Linear(shape.hidden_size, shape.vocab_size, bias=False)
        if shape.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        d = shape.head_dim
        # a plain attribute, not a buffer: .to(bfloat16) must not round the rotary frequencies
        self.inv_freq = 1.0 / (shape.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float32, device="cpu") / d))

    def rope(self, start: int, length: int, dtype: torch.dtype, device: torch.device):
        """cos and sin for positions start .. start+length-1, shaped (1, 1, length, head_dim)."""
        pos = torch.arange(start, start + length, dtype=torch.float32, device=device)
        freqs = pos[:, None] * self.inv_freq.to(device)[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype)[None, None], emb.sin().to(dtype)[None, None]

    def hidden(self, ids: torch.Tensor, past: list | None = None) -> tuple[torch.Tensor, list]:
        """The final normed hidden states and the new past."""
        x = self.model.embed_tokens(ids)
        start = 0 if not past else past[0][0].shape[2]
        cos, sin = self.rope(start, ids.shape[1], x.dtype, x.device)
        new = []
        for i, layer in enumerate(self.model.layers):
            x, kv = layer(x, cos, sin, past[i] if past else None)
            new.append(kv)
        return self.model.norm(x), new

    def forward(self, ids: torch.Tensor, past: list | None = None) -> tuple[torch.Tensor, list]:
        h, new = self.hidden(ids, past)
        return self.lm_head(h.to(input_dtype(self.lm_head))), new  # an int8 network keeps a bfloat16 head


def input_dtype(layer: nn.Module) -> torch.dtype:
    """What a linear layer wants its input in: its weight's dtype (an int8-weight layer converts itself)."""
    weight = getattr(layer, "weight", None)
    return weight.dtype if isinstance(weight, torch.Tensor) else torch.float32


class Int8WeightLinear(nn.Module):
    """A linear layer whose weight is int8, one scale per output row; the product runs with
    bfloat16 activations in torch's int8-weight kernel (what gpt-fast uses on a CPU). At batch 1 a
    token reads every weight once, so a quarter of float32's bytes is most of the speed: on this
    2-core CPU the 576 x 49152 head takes 2.1 ms against 9.2 ms in float32."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        scales = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        self.register_buffer("weight_int8", torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scales.to(torch.bfloat16))
        self.out_features = w.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        try:
            y = torch._weight_int8pack_mm(flat, self.weight_int8, self.scales)
        except (RuntimeError, AttributeError):  # a torch without the kernel (or a device it lacks): dequantise
            y = flat.float() @ (self.weight_int8.float() * self.scales.float()[:, None]).T
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)


def quantise_linears(module: nn.Module) -> nn.Module:
    """Every nn.Linear under `module` replaced by an Int8WeightLinear (in place); returns it."""
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8WeightLinear(child))
        else:
            quantise_linears(child)
    return module
