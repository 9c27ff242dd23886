"""`run.py bench`: this engine's sampler against the reference loops, in one process.

Baselines (contract "Bench JSON"): for recurrent kinds the per-step loop of pytorch/examples
word_language_model/generate.py (module forward, exp of logits/T, multinomial, .item() per token),
at 16 streams the same loop on a batch of 16; for transformer kinds nanoGPT's loop (the whole
context re-run for every token, no KV cache). Same model, threads and torch.inference_mode.
"""

from __future__ import annotations

import sys
import time

import torch

TEMPERATURE = 0.8
BASELINE_CONTEXTS = 3  # transformer runs: tokens written = this many context lengths


def _timed(step, seconds: float, per_call: int) -> float:
    """Tokens per second of `step` (which makes `per_call` tokens), after a short warm-up."""
    for _ in range(5):
        step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += per_call
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


@torch.inference_mode()
def _baseline_rnn(net, streams: int, seconds: float) -> float:
    """pytorch/examples word_language_model/generate.py, per token."""
    ntokens = net.head.out_features
    inp = torch.randint(ntokens, (streams, 1), dtype=torch.long)
    state = [None]

    def step():
        output, state[0] = net(inp, state[0])
        word_weights = output.squeeze(1).div(TEMPERATURE).exp().cpu()
        word_idx = torch.multinomial(word_weights, 1)
        inp.copy_(word_idx)
        if streams == 1:
            word_idx[0].item()
        else:
            word_idx.tolist()

    return _timed(step, seconds, streams)


def _engine(gen, streams: int, seconds: float) -> float:
    if streams == 1:
        s = gen.start(1)
        return _timed(lambda: s.next(TEMPERATURE), seconds, 1)
    b = gen.start_batch(list(range(streams)))
    temps = [TEMPERATURE] * streams
    return _timed(lambda: b.next(temps), seconds, streams)


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


def bench_neural(gen, streams_list: list[int], seconds: float) -> list[dict]:
    cases = []
    net = gen.net
    for streams in streams_list:
        extra = {}
        if gen.kind.endswith("transformer"):
            eng, base = _same_length(gen, streams)
            extra = {"method": f"both loops write {BASELINE_CONTEXTS} x context = {BASELINE_CONTEXTS * net.context} "
                               "tokens from an empty context; the baseline re-runs the last context tokens per "
                               "token (nanoGPT sample.py)"}
        else:
            eng = _engine(gen, streams, seconds)
            base = _baseline_rnn(net, streams, seconds)
        cases.append({"model": gen.name, "kind": gen.kind, "streams": streams, "engine_tok_s": round(eng, 1),
                      "baseline_tok_s": round(base, 1), "ratio": round(eng / base, 2), **extra})
    return cases


def bench_all(models: list[str], seconds: float = 3.0, streams: list[int] | None = None,
              quality: bool = False) -> dict:
    from performance.textgen import load_model
    from performance.textgen.base import ModelFileError, ServedError

    streams = streams or [1, 16]
    cases: list[dict] = []
    device = "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    for name in models:
        try:
            gen = load_model(name)
        except ModelFileError as e:
            print(f"bench: skipping {name}: {e}", file=sys.stderr)
            continue
        if gen.kind in ("markov", "spreeder", "served"):
            try:
                mod = __import__(f"performance.textgen.{gen.kind}", fromlist=["bench_case"])
                cases.append(mod.bench_case(gen, seconds))
            except (ImportError, AttributeError) as e:
                print(f"bench: no bench for {gen.kind} ({e})", file=sys.stderr)
            except ServedError as e:
                print(f"bench: skipping {name}: {e}", file=sys.stderr)
            if quality and gen.kind == "markov":
                from performance.textgen.quality import measure

                # the originality guard on (the scene default) and off, side by side
                for orig in (0.7, None):
                    cases.append({"model": gen.name, "kind": gen.kind, "originality": orig,
                                  **measure(gen, originality=orig)})
            continue
        cases.extend(bench_neural(gen, streams, seconds))
        if quality:
            from performance.textgen.quality import measure

            cases.append({"model": gen.name, "kind": gen.kind, **measure(gen)})
    return {"device": device, "threads": torch.get_num_threads(), "cases": cases}
