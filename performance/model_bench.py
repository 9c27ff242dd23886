"""`run.py bench`: this engine's sampler against the reference loops, in one process.

Baselines (contract "Bench JSON"): for recurrent kinds the per-step loop of pytorch/examples
word_language_model/generate.py (module forward, exp of logits/T, multinomial, .item() per token),
at 16 streams the same loop on a batch of 16; for transformer kinds nanoGPT's loop (the whole
context re-run for every token, no KV cache). Same model, threads and torch.inference_mode.

Engine and baseline are measured in alternation, `repeats` times each, so a burst of load from
another process hits both; a case reports the medians, their spread (min, max) and the median of
the paired ratios. Each case also says how close it runs to the machine's limits, measured in the
same run: the weight bytes read per token against a large-array copy's bandwidth (batch 1 is
memory-bound), and the FLOPs per token against a single-thread matrix product's rate (16 streams
are compute-bound).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from performance.protocol.worker import Done, Grant, Open
from performance.textgen import load_model
from performance.textgen.base import ModelFileError, ServedError
from performance.textgen.floors import copy_gb_s, gemm_gflops
from performance.textgen.kinds import kind
from performance.textgen.lengths import LengthRule
from performance.textgen.nets import RNNLM
from performance.textgen.neural import NeuralGenerator
from performance.textgen.quality import measure, precision_cost
from performance.textgen.threads import use_sampler_threads
from performance.textgen.tokenizers import make_tokenizer
from performance.worker.core import WorkerCore

TEMPERATURE = 0.8
BASELINE_CONTEXTS = 3  # transformer runs: tokens written = this many context lengths
SYNTHETIC = {"word-gru-2x1500": dict(cell="gru", vocab=30000, embed=400, hidden=1500, layers=2)}


def _timed(step, seconds: float, per_call: int) -> float:
    """Tokens per second of `step` (which makes `per_call` tokens), after a short warm-up."""
    for _ in range(3):
        step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += per_call
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def _baseline_rnn_step(net, streams: int):
    """pytorch/examples word_language_model/generate.py, per token."""
    ntokens = net.head.out_features
    inp = torch.randint(ntokens, (streams, 1), dtype=torch.long)
    state = [None]

    @torch.inference_mode()
    def step():
        output, state[0] = net(inp, state[0])
        word_weights = output.squeeze(1).div(TEMPERATURE).exp().cpu()
        word_idx = torch.multinomial(word_weights, 1)
        inp.copy_(word_idx)
        if streams == 1:
            word_idx[0].item()
        else:
            word_idx.tolist()

    return step


def _engine_step(gen, streams: int):
    if streams == 1:
        s = gen.start(1)
        return lambda: s.next(TEMPERATURE)
    b = gen.start_batch(list(range(streams)))
    temps = [TEMPERATURE] * streams
    return lambda: b.next(temps)


def _same_length(gen, streams: int) -> tuple[float, float]:
    """Transformers: both loops write the same tokens from an empty context to three contexts
    long, as nanoGPT's sample.py does over a long generation: most tokens are written with the
    context full, where the baseline re-runs the whole window per token (a run of context+32
    tokens, as before, measured mostly the cheap short-context start)."""
    net = gen.net
    n = BASELINE_CONTEXTS * net.context
    if streams == 1:
        s = gen.start(1)
        t0 = time.perf_counter()
        for _ in range(n):
            s.next(TEMPERATURE)
    else:
        b = gen.start_batch(list(range(streams)))
        t0 = time.perf_counter()
        for _ in range(n):
            b.next([TEMPERATURE] * streams)
    eng = n * streams / (time.perf_counter() - t0)
    with torch.inference_mode():
        idx = torch.zeros((streams, 1), dtype=torch.long)
        t0 = time.perf_counter()
        for _ in range(n):
            cond = idx if idx.size(1) <= net.context else idx[:, -net.context:]
            logits, _ = net(cond)
            probs = torch.softmax(logits[:, -1, :] / TEMPERATURE, dim=-1)
            nxt = torch.multinomial(probs, num_samples=1)
            idx = torch.cat((idx, nxt), dim=1)
            nxt.tolist()
    base = n * streams / (time.perf_counter() - t0)
    return eng, base


def _spread(xs: list[float], digits: int = 1) -> list[float]:
    return [round(min(xs), digits), round(max(xs), digits)]


def _limits(gen, streams: int, eng: float, base: float, copy: float, gflops: float) -> dict:
    """Weight bytes and FLOPs per token, and the fraction of the machine's floors reached."""
    fused = gen.fused
    if fused is None:
        return {}
    row = fused.table.shape[1] * 4
    eng_bytes = fused.weight_bytes / streams + row
    base_bytes = sum(p.numel() * p.element_size() for n, p in gen.net.named_parameters()
                     if not n.startswith("embed")) / streams + gen.net.embed.weight.shape[1] * 4
    return {"weight_bytes_per_token": int(eng_bytes), "baseline_weight_bytes_per_token": int(base_bytes),
            "copy_gb_s": round(copy, 2), "floor_tok_s": round(copy * 1e9 / eng_bytes, 1),
            "floor_fraction": round(eng * eng_bytes / (copy * 1e9), 3),
            "baseline_floor_fraction": round(base * base_bytes / (copy * 1e9), 3),
            "flops_per_token": fused.flops_per_token, "gemm_gflops": round(gflops, 2),
            "compute_fraction": round(eng * fused.flops_per_token / (gflops * 1e9), 3)}


def bench_neural(gen, streams_list: list[int], seconds: float, repeats: int = 5,
                 floors: tuple[float, float] = (0.0, 0.0)) -> list[dict]:
    cases = []
    net = gen.net
    for streams in streams_list:
        extra = {}
        if gen.kind.endswith("transformer"):
            eng, base = _same_length(gen, streams)
            extra = {"method": f"both loops write {BASELINE_CONTEXTS} x context = {BASELINE_CONTEXTS * net.context} "
                               "tokens from an empty context; the baseline re-runs the last context tokens per "
                               "token (nanoGPT sample.py)"}
            cases.append({"model": gen.name, "kind": gen.kind, "streams": streams, "engine_tok_s": round(eng, 1),
                          "baseline_tok_s": round(base, 1), "ratio": round(eng / base, 2), **extra})
            continue
        e_step, b_step = _engine_step(gen, streams), _baseline_rnn_step(net, streams)
        engs, bases = [], []
        for _ in range(repeats):
            engs.append(_timed(e_step, seconds, streams))
            bases.append(_timed(b_step, seconds, streams))
        ratios = [e / b for e, b in zip(engs, bases, strict=True)]
        eng, base = statistics.median(engs), statistics.median(bases)
        case = {"model": gen.name, "kind": gen.kind, "streams": streams, "engine_tok_s": round(eng, 1),
                "baseline_tok_s": round(base, 1), "ratio": round(statistics.median(ratios), 2),
                "precision": getattr(gen.fused, "precision", "fp32"), "repeats": repeats, "engine_tok_s_spread": _spread(engs),
                "baseline_tok_s_spread": _spread(bases), "ratio_spread": [round(min(ratios), 2), round(max(ratios), 2)]}
        if floors[0]:
            case.update(_limits(gen, streams, eng, base, *floors))
        cases.append(case)
    return cases


def bench_flick(gen, repeats: int = 3, ahead: int = 4, words: int = 222) -> dict:
    """The poem flick's need: `ahead` poems of `words` words written together by the generator
    worker (batched streams, as the engine opens them), poems per second, median of `repeats`."""

    rule = LengthRule("words", words)
    cap = rule.max_tokens(gen.word_tokens)
    rates, toks = [], []
    for r in range(repeats):
        out: list = []
        core = WorkerCore(out.append, loader=lambda _name: gen)
        t0 = time.perf_counter()
        for i in range(ahead):
            core.handle(Open(i, gen.name, 1000 * r + i, "", rule))
            core.handle(Grant(i, (TEMPERATURE,) * cap))
        core.pump()
        dt = time.perf_counter() - t0
        done = sum(isinstance(m, Done) for m in out)
        rates.append(done / dt)
        toks.append((len(out) - done) / dt)
    return {"model": gen.name, "kind": gen.kind, "case": "flick", "streams": ahead, "words_per_poem": words,
            "poems_per_s": round(statistics.median(rates), 2), "poems_per_s_spread": _spread(rates, 3),
            "tok_s": round(statistics.median(toks), 1), "repeats": repeats}


def bench_stage_flick(seconds: float = 20.0) -> dict:
    """The stage beside batched streams: `run.py play setlists/poem-flick.toml --headless` for
    `seconds`, its frame rate and p99 frame work time, and the poems it finished (from its
    transcript), so a sampler that starves the frame loop shows here."""

    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        cmd = [sys.executable, "run.py", "play", "setlists/poem-flick.toml", "--headless", "--quiet",
               "--duration", str(seconds), "--stats-json", str(stats), "--transcript-dir", tmp]
        r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=seconds + 120)
        if r.returncode != 0 or not stats.exists():
            return {"model": "default", "case": "stage-flick", "error": (r.stderr.strip().splitlines() or ["?"])[-1]}
        st = json.loads(stats.read_text())
        poems = 0
        for f in Path(tmp).glob("*.jsonl"):
            poems += sum('"event": "poem_end"' in line or '"event":"poem_end"' in line for line in f.open())
    return {"model": "default", "kind": "char-lstm", "case": "stage-flick", "seconds": seconds,
            "fps": st.get("fps"), "frame_ms_p99": st.get("frame_ms_p99"), "dropped": st.get("dropped"),
            "poems": poems, "poems_per_s": round(poems / seconds, 2)}


def synthetic(name: str, precision: str | None = None):
    """A random-weight model of a named size (bench only): e.g. word-gru-2x1500, 30k words."""

    spec = SYNTHETIC[name]
    torch.manual_seed(0)
    net = RNNLM(spec["cell"], spec["vocab"], spec["embed"], spec["hidden"], spec["layers"])
    vocab = ["\n"] + [f"w{i}" for i in range(spec["vocab"] - 1)]
    kind = f"word-{spec['cell']}"
    return NeuralGenerator(name, kind, {"kind": kind}, net, make_tokenizer(kind, vocab), precision=precision)


def bench_all(models: list[str], seconds: float = 1.0, streams: list[int] | None = None,
              quality: bool = False, repeats: int = 5, precision: str | None = None, flick: bool = True,
              stage: float = 0.0, quality_temperature: float = 0.7) -> dict:
    threads = use_sampler_threads()
    streams = streams or [1, 16]
    cases: list[dict] = []
    device = "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    floors = (copy_gb_s(), gemm_gflops())
    for name in models:
        try:
            gen = synthetic(name, precision) if name in SYNTHETIC else load_model(name)
        except ModelFileError as e:
            print(f"bench: skipping {name}: {e}", file=sys.stderr)
            continue
        entry = kind(gen.kind)
        own_bench = entry.function("bench") if entry is not None else None
        if own_bench is not None:  # kinds outside the neural bench bring their own case
            try:
                cases.append(own_bench(gen, seconds))
            except ServedError as e:
                print(f"bench: skipping {name}: {e}", file=sys.stderr)
            if quality and gen.kind == "markov":
                # the originality guard on (the scene default) and off, side by side
                for orig in (0.7, None):
                    cases.append({"model": gen.name, "kind": gen.kind, "originality": orig,
                                  **measure(gen, originality=orig)})
            elif quality and gen.kind not in ("served", "spreeder"):  # a neural kind with its own bench
                cases.append({"model": gen.name, "kind": gen.kind, **measure(gen, temperature=quality_temperature)})
            continue
        if precision and getattr(gen, "fused", None) is not None and name not in SYNTHETIC:
            gen.set_precision(precision)
        cases.extend(bench_neural(gen, streams, seconds, repeats, floors))
        if flick and getattr(gen, "fused", None) is not None and name not in SYNTHETIC:
            cases.append(bench_flick(gen))
        if quality:
            cases.append({"model": gen.name, "kind": gen.kind, **measure(gen, temperature=quality_temperature)})
            if getattr(gen, "fused", None) is not None:
                cases.append({"model": gen.name, "kind": gen.kind, **precision_cost(gen)})
    if stage > 0:
        cases.append(bench_stage_flick(stage))
    return {"device": device, "threads": threads, "cases": cases}
