"""`run.py bench MODEL` for a served model: Lectern's stream against the server's own raw stream.

Both sides send the same request (same prompt, seed, temperature, max tokens, logprobs), one stream
at a time, alternating, and the median of the repeats is reported. The baseline reads the raw SSE
lines straight off the socket and counts the token events; Lectern's side is `ServedStream.next()`
(SSE parsing, logprobs, Token objects).
"""

from __future__ import annotations

import http.client
import json
import statistics
import time

from performance.textgen.base import ServedError
from performance.textgen.served import ServedGenerator, request_seed


def _raw_stream(gen: ServedGenerator, route: str, body: dict) -> tuple[int, float, float]:
    """(token events, seconds to the last one, seconds to the first one) from a bare http.client read.

    Bounded like Lectern's own stream: no data line within the patience (keep-alive comments do not
    count) or a failed connection is a ServedError, and the connection is always closed."""
    ep = gen.endpoint
    url = ep.base_url + route
    cls = http.client.HTTPSConnection if ep.https else http.client.HTTPConnection
    conn = cls(ep.host, ep.port, timeout=ep.first_timeout)
    n, first = 0, 0.0
    patience = max(gen.patience, ep.first_timeout)
    try:
        t0 = time.perf_counter()
        until = time.monotonic() + patience
        conn.request("POST", ep.path + route, body=json.dumps(body), headers=ep._headers())
        resp = conn.getresponse()
        if resp.status >= 400:
            raise ServedError(f"{url}: HTTP {resp.status} {resp.reason}")
        while True:
            if time.monotonic() > until:
                raise ServedError(f"{url}: no token within {patience:g} s")
            line = resp.readline(1 << 20)
            if not line:
                break
            if line.startswith(b"data:"):
                if line.strip() == b"data: [DONE]":
                    break
                until = time.monotonic() + patience
                if b'"text":""' in line.replace(b" ", b"") or b'"content":""' in line.replace(b" ", b""):
                    continue  # the closing chunk with only a finish_reason
                n += 1
                if n == 1:
                    first = time.perf_counter() - t0
        total = time.perf_counter() - t0
    except ConnectionRefusedError:
        raise ServedError(f"{url}: connection refused (is the server running?)") from None
    except TimeoutError:
        raise ServedError(f"{url}: no answer within {ep.first_timeout:g} s (timeout)") from None
    except (OSError, http.client.HTTPException) as e:
        raise ServedError(f"{url}: {type(e).__name__}: {' '.join(str(e).split())[:120]}") from None
    finally:
        conn.close()
    if n == 0:
        raise ServedError(f"{url}: the stream held no tokens")
    return n, total, first


def _lectern_stream(gen: ServedGenerator, seed: int, temperature: float, n_tokens: int) -> tuple[int, float, float]:
    """(tokens, seconds to the last one, seconds to the first one) through ServedStream.next()."""
    s = gen.start(seed)
    s.continuation = n_tokens
    t0 = time.perf_counter()
    s.next(temperature)
    first = time.perf_counter() - t0
    try:
        while s._events is not None:
            s.next(temperature)
    finally:
        s.close()
    total = time.perf_counter() - t0
    return s._n_cont, total, first


def bench_served(gen: ServedGenerator, seconds: float = 3.0, n_tokens: int = 128, repeats: int = 5) -> dict:
    """One case of the bench JSON: engine_tok_s (through Lectern) against baseline_tok_s (raw)."""
    gen.verify()
    gen.endpoint.timeout = gen.endpoint.first_timeout  # a benchmark waits out a busy machine's gaps
    gen.patience = max(gen.patience, gen.endpoint.first_timeout)
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


def bench_case(gen: ServedGenerator, seconds: float = 3.0) -> dict:
    """The bench case of a served model (`run.py bench` calls it; the client never imports the bench)."""
    return bench_served(gen, seconds)
