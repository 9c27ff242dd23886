"""What co-writing costs the generator worker: tokens/s of a co-writing poem against the same
model's plain poem (measured in the same run), and the time a chosen word takes to be re-fed.

Prints one JSON object: per model {plain_tok_s, cowrite_tok_s, ratio} (medians of 3 runs of 600
tokens; every fifth word offered, as setlists/cowrite.toml), and refeed_ms: the median time of a
Force late in a poem (600 tokens written) for the char model, from the state kept where the word was
offered, and for a fresh stream primed with the whole text (what it would cost without).

    nice -n 10 .venv/bin/python bench/bench_cowrite.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from performance.protocol.worker import Force, Grant, Open, TokenOut  # noqa: E402
from performance.show.cowrite_settings import CowriteSettings  # noqa: E402
from performance.textgen.lengths import LengthRule  # noqa: E402
from performance.worker.core import WorkerCore  # noqa: E402

N = 600


def written(model: str, cowrite: CowriteSettings | None) -> tuple[float, WorkerCore, list]:
    out: list = []
    core = WorkerCore(out.append)
    core.handle(Open(1, model, 3, "", LengthRule("words", 100000), cowrite=cowrite))
    core.handle(Grant(1, (0.8,) * 8))
    core.pump()  # the model loaded and warm
    core.handle(Grant(1, (0.8,) * N))
    t0 = time.perf_counter()
    core.pump()
    return N / (time.perf_counter() - t0), core, out


def refeed_ms(kept: bool) -> float:
    """A Force late in a char-model poem, at the last place a word was offered."""
    times = []
    for _ in range(3):
        _, core, out = written("default", CowriteSettings(words=5))
        stream = core._reqs[1].stream
        pos = stream.snaps[-1][0]
        text = "".join(m.token.text for m in out if isinstance(m, TokenOut) and m.id == 1)[:pos] + "moon "
        if not kept:
            stream.snaps.clear()  # as if no state were kept: a fresh stream primed with the whole text
        t0 = time.perf_counter()
        core.handle(Force(1, 2, text))
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    res: dict = {}
    for model in ("default", "markov"):
        plain = statistics.median(written(model, None)[0] for _ in range(3))
        cw = statistics.median(written(model, CowriteSettings(words=5))[0] for _ in range(3))
        res[model] = {"plain_tok_s": round(plain), "cowrite_tok_s": round(cw), "ratio": round(cw / plain, 3)}
    res["refeed_ms"] = {"kept_state": refeed_ms(True), "fresh_prime": refeed_ms(False)}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
