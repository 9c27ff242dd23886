"""`run.py export DIR --gguf`: the poet's LoRA as a llama.cpp adapter GGUF, and a served card.

DIR/adapter.gguf is what llama.cpp's own convert_lora_to_gguf.py writes (general.type
"adapter", adapter.type "lora", adapter.lora.alpha; blk.N.<tensor>.weight.lora_a / .lora_b,
float16), so a llama.cpp server started on the base's GGUF with `--lora` (llama-cpp-python:
`--lora_path`) writes as the poet. The query and key projections' B matrices are permuted as
llama.cpp's converter permutes those weights (its rotary layout differs from transformers'); A
is untouched. DIR-served/model.json is a card of the existing served kind that plays it, with
the poet's prefix mark in its template.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from performance.textgen.base import ModelFileError
from performance.textgen.cards import read_card, write_card
from performance.textgen.pretrained_base import gguf_path
from performance.textgen.pretrained_data import prefix_text

# transformers' projection names -> llama.cpp's tensor names
NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
         "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
         "mlp.down_proj": "ffn_down"}
DEFAULT_URL = "http://127.0.0.1:8080/v1"


def permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter's row permutation of a query/key projection (LlamaModel.permute)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def adapter_tensors(tensors: dict[str, np.ndarray], heads: int, kv_heads: int) -> dict[str, np.ndarray]:
    """peft's names and layout -> the adapter GGUF's."""
    out = {}
    for key, value in tensors.items():
        parts = key.split(".")  # model.layers.N.self_attn.q_proj.lora_A.weight
        if len(parts) != 7 or parts[5] not in ("lora_A", "lora_B"):
            raise ModelFileError(f"adapter tensor {key}: not a LoRA A/B of a decoder layer")
        name = NAMES.get(f"{parts[3]}.{parts[4]}")
        if name is None:
            raise ModelFileError(f"adapter tensor {key}: llama.cpp has no tensor for {parts[3]}.{parts[4]}")
        w = value.astype(np.float32)  # permuted in float32, written as float16 (half the file; llama.cpp reads both)
        if parts[5] == "lora_B" and name in ("attn_q", "attn_k"):
            w = permute(w, heads if name == "attn_q" else kv_heads)
        out[f"blk.{parts[2]}.{name}.weight.lora_{parts[5][-1].lower()}"] = np.ascontiguousarray(w.astype(np.float16))
    return out


def write_adapter_gguf(model_dir: Path, card: dict, out: Path) -> int:
    """Write the adapter GGUF; returns its size in bytes."""
    # lazy: gguf loads only when run.py export writes a file
    import gguf

    if card.get("weights") != "lora" or not card.get("lora"):
        raise ModelFileError(f"{model_dir}: export --gguf writes a LoRA adapter; this card's weights are "
                             f"{card.get('weights')!r}")
    try:
        raw = load_file(str(model_dir / "model.safetensors"))
    except Exception as e:
        raise ModelFileError(f"{model_dir / 'model.safetensors'}: unreadable ({e})") from None
    base = gguf.GGUFReader(str(gguf_path(card["base"]["name"])))
    heads = int(base.fields["llama.attention.head_count"].parts[-1][0])
    kv_heads = int(base.fields["llama.attention.head_count_kv"].parts[-1][0])
    tensors = adapter_tensors({k: v.float().numpy() for k, v in raw.items()}, heads, kv_heads)
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(card["lora"]["alpha"]))
    w.add_name(f"{card.get('name', model_dir.name)} (LoRA of {card['base']['name']})")
    for name, t in sorted(tensors.items()):
        w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out.stat().st_size


def served_card(model_dir: Path, card: dict, url: str, prefix: str) -> dict:
    """A served card that plays the exported adapter through a llama.cpp server."""
    name = card.get("name", model_dir.name)
    return {"kind": "served", "name": f"{name}-served",
            "description": f"{name} (LoRA on {card['base']['gguf']}) served by llama.cpp: start it with "
                           f"python -m llama_cpp.server --model BASE.gguf --lora_path {model_dir}/adapter.gguf "
                           f"--model_alias {name}",
            "base_url": url, "api": "completions", "model": name, "api_key_env": "", "system": "",
            # the prefix mark as in training; the prompt is the poem's first words
            "template": prefix_text(prefix) + "{prompt}", "prompt": "",
            "stop": ["<|endoftext|>", "<|im_start|>", "["], "timeout": 1.5, "first_token_timeout": 20,
            "max_tokens": 400, "continuation": 16, "top_logprobs": 3, "retry_s": 1.0, "patience_s": 5}


def export(model_dir: Path, card: dict, args) -> str:
    """The registry's export entry: `run.py export DIR --gguf [--url URL] [--prefix POET]`."""
    if not getattr(args, "gguf", False):
        raise ModelFileError("export: say what to write (--gguf: a llama.cpp LoRA adapter and a served card)")
    out = model_dir / "adapter.gguf"
    size = write_adapter_gguf(model_dir, card, out)
    prefix = args.prefix if getattr(args, "prefix", None) is not None else (card.get("prefix") or {}).get("default", "")
    served_dir = Path(args.served_out) if getattr(args, "served_out", None) else model_dir.parent / f"{model_dir.name}-served"
    served_dir.mkdir(parents=True, exist_ok=True)
    sc = served_card(model_dir, card, getattr(args, "url", None) or DEFAULT_URL, prefix or "")
    write_card(served_dir, sc)
    json.loads((served_dir / "model.json").read_text())
    read_card(served_dir)
    return (f"wrote {out} ({size / 1e6:.1f} MB) and {served_dir}/model.json; serve it with:\n"
            f"  python -m llama_cpp.server --model {gguf_path(card['base']['name'])} --lora_path {out} "
            f"--model_alias {sc['model']} --host 127.0.0.1 --port 8080")
