"""`run.py bench MODEL` for the pretrained kind: Lectern's stream, transformers' generate(), llama.cpp.

Same prompt, same number of new tokens, same sampling (temperature 0.8, no top-k/top-p), one
stream, in alternation, `REPEATS` times each; medians. Lectern's side is the stage's own stream
(key/value cache, the card's precision: int8 weights by default) with the originality guard off, so
every side does the same work. transformers' side is `LlamaForCausalLM.generate()` on the same
merged weights in float32 (transformers' default on a CPU). llama.cpp's side is llama-cpp-python
on the base's GGUF with the exported adapter (`run.py export DIR --gguf`), in process, with the
same thread count (skipped, with the reason, where it is not installed or not exported). The
precision's quality cost: nats/char of the first same-poets blocks in the card's precision and
in float32.
"""

from __future__ import annotations

import importlib
import importlib.util
import statistics
import time

import torch

PROMPT = "The sea at night"
NEW_TOKENS = 64
TEMPERATURE = 0.8
REPEATS = 3


def _words(text: str) -> int:
    return len(text.split())


def _lectern(gen, seed: int) -> tuple[float, int]:
    s = gen.start(seed, PROMPT)
    s.set_originality(None)
    t0 = time.perf_counter()
    text = "".join(s.next(TEMPERATURE).text for _ in range(NEW_TOKENS))
    return time.perf_counter() - t0, _words(text)


def _hf_model(gen):
    # lazy: transformers only for the bench's generate() comparison
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    cfg = {k: v for k, v in gen.base_config.items() if k not in ("architectures", "dtype", "torch_dtype")}
    model = LlamaForCausalLM(LlamaConfig(**cfg)).eval()
    # lazy: this pulls in torch and the pretrained network; only the bench's pretrained case pays for it
    from performance.textgen.pretrained import apply_adapter_file
    from performance.textgen.pretrained_base import load_base

    ref = load_base(gen.card["base"]["name"]).net  # the same merged weights, in float32
    apply_adapter_file(ref, gen.model_dir / "model.safetensors", gen.card.get("lora"))
    model.load_state_dict(ref.state_dict(), strict=False)
    model.tie_weights()
    return model


def _generate(model, tokenizer, seed: int) -> tuple[float, int]:
    ids = torch.tensor([tokenizer.encode(PROMPT).ids])
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(ids, do_sample=True, temperature=TEMPERATURE, top_k=0, top_p=1.0,
                             max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, pad_token_id=2)
    dt = time.perf_counter() - t0
    return dt, _words(tokenizer.decode(out[0, ids.shape[1]:].tolist()))


def _llama_cpp(gen):
    """A llama.cpp model with the exported adapter, or the reason there is none."""

    # lazy: this pulls in torch and the pretrained network; only the bench's pretrained case pays for it
    from performance.textgen.pretrained_base import gguf_path

    adapter = gen.model_dir / "adapter.gguf"
    if importlib.util.find_spec("llama_cpp") is None:
        return None, "llama-cpp-python not installed (make served-setup)"
    if not adapter.exists():
        return None, f"{adapter} missing (run.py export {gen.model_dir} --gguf)"
    # optional (requirements-served.txt, make served-setup), so imported by name: not a runtime pin
    llama_cpp = importlib.import_module("llama_cpp")
    model = llama_cpp.Llama(str(gguf_path(gen.card["base"]["name"])), lora_path=str(adapter), n_ctx=512,
                            n_threads=torch.get_num_threads(), n_threads_batch=torch.get_num_threads(), verbose=False)
    return model, None


def _llama_run(model, seed: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = model.create_completion(PROMPT, max_tokens=NEW_TOKENS, temperature=TEMPERATURE, top_k=0, top_p=1.0,
                                  min_p=0.0, seed=seed)
    dt = time.perf_counter() - t0
    return dt, _words(out["choices"][0]["text"]), out["usage"]["completion_tokens"]


def _quality_cost(gen) -> dict:
    """nats/char of up to 3 same-poets blocks in the card's precision and in float32."""
    # lazy: this pulls in torch and the pretrained network; only the bench's pretrained case pays for it
    from performance.textgen.corpus import read_corpus
    from performance.textgen.pretrained import ROOT
    from performance.textgen.pretrained_data import make_splits, nats_per_char

    path = (gen.card.get("corpus") or {}).get("path")
    if not path:
        return {}
    # lazy: this pulls in torch and the pretrained network; only the bench's pretrained case pays for it
    from performance.textgen.pretrained import apply_adapter_file
    from performance.textgen.pretrained_base import load_base

    windows = make_splits(gen.tokenizer, read_corpus(ROOT / path).text).same_windows[:3]
    own = nats_per_char(gen.net, windows, gen.device)
    ref = load_base(gen.card["base"]["name"]).net
    apply_adapter_file(ref, gen.model_dir / "model.safetensors", gen.card.get("lora"))
    full = nats_per_char(ref, windows)
    return {"nats_per_char_precision": round(own, 4), "nats_per_char_fp32": round(full, 4),
            "quality_cost_nats_per_char": round(own - full, 4), "quality_windows": len(windows)}


def bench_case(gen, seconds: float = 1.0) -> dict:
    """The kind's bench case (the registry's bench entry)."""
    model = _hf_model(gen)
    llama, why = _llama_cpp(gen)
    lec, hf, ll = [], [], []
    for r in range(REPEATS):  # alternated, so a burst of load from elsewhere hits every side
        lec.append(_lectern(gen, r + 1))
        hf.append(_generate(model, gen.tokenizer, r + 1))
        if llama is not None:
            ll.append(_llama_run(llama, r + 1))
    tok = lambda runs, n=NEW_TOKENS: statistics.median(n / dt for dt, *_ in runs)  # noqa: E731
    words = lambda runs: statistics.median(w / dt for dt, w, *_ in runs)  # noqa: E731
    case = {"model": gen.name, "kind": gen.kind, "case": "pretrained", "streams": 1, "prompt": PROMPT,
            "new_tokens": NEW_TOKENS, "temperature": TEMPERATURE, "repeats": REPEATS, "precision": gen.precision,
            "threads": torch.get_num_threads(),
            "engine_tok_s": round(tok(lec), 1), "engine_words_s": round(words(lec), 1),
            "baseline": "transformers generate() float32", "baseline_tok_s": round(tok(hf), 1),
            "baseline_words_s": round(words(hf), 1)}
    case["ratio"] = round(case["engine_tok_s"] / case["baseline_tok_s"], 2)
    if ll:
        case["llama_cpp_tok_s"] = round(statistics.median(n / dt for dt, _, n in ll), 1)
        case["llama_cpp_words_s"] = round(words(ll), 1)
    else:
        case["llama_cpp"] = why
    case.update(_quality_cost(gen))
    return case
