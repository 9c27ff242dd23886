"""`run.py bench MODEL` for a served model: Lectern's stream against the server's own raw stream.

Both sides send the same request (same prompt, seed, temperature, max tokens, logprobs), one stream
at a time, alternating, and the median of the repeats is reported. The baseline reads the raw SSE
lines straight off the socket and counts the token events; Lectern's side is `ServedStream.next()`
(SSE parsing, logprobs, Token objects).
"""

from __future__ import annotations

import http.client
import statistics
import time

from performance.textgen.served import ServedGenerator, request_seed


def _raw_stream(gen: ServedGenerator, route: str, body: dict) -> tuple[int, float, float]:
    """(token events, seconds to the last one, seconds to the first one) from a bare http.client read."""
    ep = gen.endpoint
    cls = http.client.HTTPSConnection if ep.https else http.client.HTTPConnection
    conn = cls(ep.host, ep.port, timeout=ep.first_timeout)
    import json

    t0 = time.perf_counter()
    conn.request("POST", ep.path + route, body=json.dumps(body), headers=ep._headers())
    resp = conn.getresponse()
    n, first = 0, 0.0
    while True:
        line = resp.readline()
        if not line:
            break
        if line.startswith(b"data:"):
            if line.strip() == b"data: [DONE]":
                break
            if b'"text":""' in line.replace(b" ", b"") or b'"content":""' in line.replace(b" ", b""):
                continue  # the closing chunk with only a finish_reason
            n += 1
            if n == 1:
                first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    conn.close()
    return n, total, first


def _lectern_stream(gen: ServedGenerator, seed: int, temperature: float, n_tokens: int) -> tuple[int, float, float]:
    """(tokens, seconds to the last one, seconds to the first one) through ServedStream.next()."""
    s = gen.start(seed)
    s.continuation = n_tokens
    t0 = time.perf_counter()
    s.next(temperature)
    first = time.perf_counter() - t0
    while s._events is not None:
        s.next(temperature)
    total = time.perf_counter() - t0
    return s._n_cont, total, first


def bench_served(gen: ServedGenerator, seconds: float = 3.0, n_tokens: int = 128, repeats: int = 5) -> dict:
    """One case of the bench JSON: engine_tok_s (through Lectern) against baseline_tok_s (raw)."""
    gen.verify()
    gen.endpoint.timeout = gen.endpoint.first_timeout  # a benchmark waits out a busy machine's gaps
    seed, temperature = 7, 0.8
    route, body = gen.request(gen.card["prompt"], "", temperature, 0, 1.0, request_seed(seed, 0), n_tokens)
    _raw_stream(gen, route, body)  # warm the server (model pages, prompt processing paths)
    eng, raw, eng_first, raw_first = [], [], [], []
    for _ in range(repeats):
        n, total, first = _raw_stream(gen, route, body)
        raw.append(n / total)
        raw_first.append(first)
        n, total, first = _lectern_stream(gen, seed, temperature, n_tokens)
        eng.append(n / total)
        eng_first.append(first)
    e, b = statistics.median(eng), statistics.median(raw)
    return {"model": gen.name, "kind": "served", "streams": 1, "engine_tok_s": round(e, 1), "baseline_tok_s": round(b, 1),
            "ratio": round(e / b, 3), "first_token_s": round(statistics.median(eng_first), 3),
            "baseline_first_token_s": round(statistics.median(raw_first), 3), "max_tokens": n_tokens,
            "repeats": repeats, "endpoint": gen.endpoint.base_url}
