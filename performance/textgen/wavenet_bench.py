"""The char-wavenet's bench case: the queued sampler against the naive loop, in one run.

Both loops continue the same text, already a receptive field long (so every character the naive
loop writes costs it the whole field: its steady state), at temperature 0.8 on one thread; they
are timed in alternation `REPEATS` times and the medians reported, with the median of the paired
ratios. Then 16 streams stepped together on the queues (the poem flick's batch), in tok/s.
"""

from __future__ import annotations

import statistics
import sys
import time

from performance.textgen.threads import use_sampler_threads
from performance.textgen.wavenet import WaveNetGenerator

TEMPERATURE = 0.8
REPEATS = 3
SAME_TEXT_CHARS = 40


def _timed(step, seconds: float, per_call: int = 1, least: int = 3) -> float:
    step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += per_call
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= least * per_call:
            return n / dt


def _primed(gen: WaveNetGenerator, history: str, naive: bool):
    """A stream that has read `history` (not echoed: the next token is drawn)."""
    s = gen.start_naive(1, history) if naive else gen.start(1, history)
    s.echo = []
    return s


def _history(gen: WaveNetGenerator) -> str:
    s = gen.start(0)
    return "".join(s.next(TEMPERATURE).text for _ in range(gen.net.receptive_field))


def same_text(gen: WaveNetGenerator, seed: int = 7, chars: int = SAME_TEXT_CHARS) -> bool:
    """Do the queued and the naive loop write the same text from the same seed?"""
    a, b = gen.start(seed), gen.start_naive(seed)
    return all(a.next(TEMPERATURE).text == b.next(TEMPERATURE).text for _ in range(chars))


def bench_case(gen: WaveNetGenerator, seconds: float) -> dict:
    use_sampler_threads()
    history = _history(gen)
    fast, naive = _primed(gen, history, False), _primed(gen, history, True)
    engs, bases = [], []
    for _ in range(REPEATS):
        engs.append(_timed(lambda: fast.next(TEMPERATURE), seconds))
        bases.append(_timed(lambda: naive.next(TEMPERATURE), seconds))
    ratios = [e / b for e, b in zip(engs, bases, strict=True)]
    batch = gen.start_batch(list(range(16)))
    temps = [TEMPERATURE] * 16
    for _ in range(gen.net.receptive_field):  # the batch, too, a receptive field into its poems
        batch.next(temps)
    b16 = _timed(lambda: batch.next(temps), seconds, per_call=16)
    case = {"model": gen.name, "kind": gen.kind, "streams": 1,
            "engine_tok_s": round(statistics.median(engs), 1), "baseline_tok_s": round(statistics.median(bases), 1),
            "ratio": round(statistics.median(ratios), 2), "precision": "fp32", "repeats": REPEATS,
            "ratio_spread": [round(min(ratios), 2), round(max(ratios), 2)],
            "streams_16_tok_s": round(b16, 1), "streams_16_vs_1": round(b16 / statistics.median(engs), 2),
            "receptive_field": gen.net.receptive_field, "layers": len(gen.net.blocks),
            "same_text": same_text(gen),
            "method": "engine: per-block queues of past inputs, one step per block per char; baseline: the "
                      "whole net re-run over the last receptive field per char (torch, inference mode); both "
                      "continue the same receptive-field-long text"}
    print(f"  {gen.name}: 16 streams on the queues {b16:,.0f} tok/s ({case['streams_16_vs_1']}× one stream); "
          f"receptive field {case['receptive_field']} chars; same text queued and naive: {case['same_text']}",
          file=sys.stderr)
    return case
