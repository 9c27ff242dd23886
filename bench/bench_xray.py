"""What the x-ray costs per token: plain stream vs x-ray stream (top-5 + a watched unit) on one model.

    python bench/bench_xray.py [MODEL] [--repeats N] [--tokens N]

Interleaved repeats in one process, medians; prints one JSON object with tokens/s of each and the
ratio xray / plain (1.0 = free). The plain stream is exactly what scenes without x-ray run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from performance.textgen import load_model  # noqa: E402
from performance.textgen.xray import XraySpec, start_xray  # noqa: E402


def rate(stream, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        stream.next(0.8)
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="default")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=400)
    args = ap.parse_args()
    gen = load_model(args.model)
    plain, xray = [], []
    for r in range(args.repeats):
        plain.append(rate(gen.start(r), args.tokens))
        xray.append(rate(start_xray(gen, r, "", XraySpec(5, 7)), args.tokens))
    p, x = statistics.median(plain), statistics.median(xray)
    print(json.dumps({"model": args.model, "kind": gen.kind, "plain_tok_s": round(p, 1), "xray_tok_s": round(x, 1),
                      "ratio": round(x / p, 3), "repeats": args.repeats, "tokens": args.tokens}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
