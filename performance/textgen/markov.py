"""A word Markov chain (orders 1–3) behind the one generator interface.

Tokens are words, punctuation and line breaks, so the chain keeps lines and stanzas (divider lines
without letters, like Hopkins's "#", are read as stanza breaks: classic_text.verse_text). Temperature
reshapes the transition counts (p ∝ count^(1/T)); at 0 the likeliest next token is taken, ties
going to the first in vocabulary order, and p is reported untempered (as the neural kinds do, so
surprise −log p stays meaningful). An unseen context backs off to shorter ones down to the
unigram, so the chain never dead-ends.

Storage: int32 arrays in safetensors (loading runs no code) — per order, the rows (context, next,
count) sorted by context then next. Loading turns each context into one base-V integer and keeps a
dict from it to its row range, so a step is one dict lookup and a short loop over counts.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from performance import __version__
from performance.textgen.base import ModelFileError, SequentialBatch, Token
from performance.textgen.cards import write_card
from performance.textgen.classic_text import verse_text
from performance.textgen.corpus import Corpus
from performance.textgen.originality import DEFAULT_RATIO, OriginalityGuard, corpus_words
from performance.textgen.tokenizers import WordTokenizer

ORDERS = (1, 2, 3)
_GUARD_TRIES = 20  # lines drawn before a copying one is let through (at temperature 0 all are alike)
_LINE_MAX = 40  # tokens in one line before the guard stops looking for its end
# Rows with more successors than this get their tempered distribution cached: recomputing a
# thousand powers per token (a unigram back-off, the context "\n") would dominate the step.
_BIG_ROW = 48
_CACHE_MAX = 2_000  # distributions kept; bounded so a weeks-long show does not grow


def _count(ids: list[int], order: int) -> dict[tuple, Counter]:
    table: dict[tuple, Counter] = defaultdict(Counter)
    for i in range(order, len(ids)):
        table[tuple(ids[i - order:i])][ids[i]] += 1
    return table


def train_markov(corpus: Corpus, out_dir: Path, order: int, seed: int) -> None:
    """Build the chain of `order` (1–3) from `corpus` into the model folder `out_dir`.

    Writes model.safetensors (the n-gram tables) and model.json (the card, with samples).
    """
    if order not in ORDERS:
        raise ModelFileError(f"--order {order}: allowed 1, 2 or 3")
    t0 = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = verse_text(corpus.text)
    tok = WordTokenizer(sorted(set(WordTokenizer.split(text))))
    ids = tok.encode(text)
    arrays: dict[str, np.ndarray] = {"unigram": np.bincount(ids, minlength=len(tok.vocab)).astype(np.int32)}
    is_word = [any(ch.isalpha() for ch in w) for w in tok.vocab]
    arrays["orig_words"] = corpus_words(ids, is_word, tok.index.get("\n"))
    for o in range(1, order + 1):
        table = _count(ids, o)
        rows = sorted((ctx, nxt, c) for ctx, counter in table.items() for nxt, c in counter.items())
        arrays[f"ctx{o}"] = np.array([r[0] for r in rows], dtype=np.int32).reshape(-1, o)
        arrays[f"next{o}"] = np.array([r[1] for r in rows], dtype=np.int32)
        arrays[f"count{o}"] = np.array([r[2] for r in rows], dtype=np.int32)
    save_file(arrays, str(out_dir / "model.safetensors"))
    card = {"kind": "markov", "name": out_dir.name, "engine_version": __version__, "format": 1, "order": order,
            "hyperparameters": {"order": order}, "originality_guard": {"ratio": DEFAULT_RATIO, "total": 15},
            "vocab": tok.vocab, "vocab_size": len(tok.vocab),
            "contexts": {str(o): int(len(np.unique(arrays[f"ctx{o}"], axis=0))) for o in range(1, order + 1)},
            "corpus": corpus.card(), "tokens": len(ids), "training_seconds": round(time.monotonic() - t0, 2),
            "device": "cpu", "date": datetime.now(UTC).isoformat(timespec="seconds"), "seed": seed}
    write_card(out_dir, card)
    gen = load_markov(out_dir, card)
    card["samples"] = {}
    for t in (0.3, 0.7, 1.1):
        s = gen.start(seed)
        card["samples"][str(t)] = "".join(s.next(t).text for _ in range(60))
    write_card(out_dir, card)


class MarkovStream:
    """One seeded walk along the chain. The prompt's known words are echoed first (p = 1).

    With the originality guard on (the default when the model holds its corpus words), the walk
    writes a whole line ahead, at the temperature asked for its first token, and draws it again
    (up to 20 times) while it copies a corpus line; tokens are then handed out one by one."""

    def __init__(self, gen: MarkovGenerator, seed: int, prompt: str) -> None:
        self.gen = gen
        self.rng = random.Random(seed)
        self.tail = ""
        prompt_ids = gen.tok.encode(prompt, warn=True) if prompt else []
        # a poem starts as a stanza does in the corpus, after a blank line: the chain opens with a
        # stanza's first word (and the no-third-newline rule keeps it from opening on a blank line)
        self.history: list[int] = ([gen.newline] * 2 if gen.newline is not None else []) + prompt_ids
        self.echo = list(prompt_ids)
        self.originality: float | None = DEFAULT_RATIO if gen.guard is not None else None
        self._line: list[tuple[int, float, float, list[int]]] = []
        self.rejected = 0  # lines drawn again because they copied the corpus
        # the history the last token handed out was drawn after (None: echoed): with the guard the
        # walk is a line ahead of what is handed out, so the x-ray reads each word's own context here
        self.drawn_after: list[int] | None = None

    def set_originality(self, ratio: float | None) -> None:
        """The guard's share (markovify's max_overlap_ratio), or None to let lines copy freely."""
        self.originality = ratio if self.gen.guard is not None else None

    def _emit(self, i: int, p: float, temperature: float) -> Token:
        text = self.gen.tok.piece(i, self.tail)
        self.tail = (self.tail + text)[-8:]
        return Token(text, p, temperature)

    def _draw(self, temperature: float, top_k: int, top_p: float) -> tuple[int, float]:
        i, p = self.gen.step(self.history, temperature, top_k, top_p, self.rng)
        history = self.history
        history.append(i)
        if len(history) > 8:
            del history[:-4]
        return i, p

    def _write_line(self, temperature: float, top_k: int, top_p: float) -> None:
        gen = self.gen
        start = list(self.history)
        for _ in range(_GUARD_TRIES):
            self.history = list(start)
            line = []
            while len(line) < _LINE_MAX:
                before = list(self.history)
                i, p = self._draw(temperature, top_k, top_p)
                line.append((i, p, temperature, before))
                if i == gen.newline:
                    break
            words = [i for i, _, _, _ in line if gen.is_word[i]]
            if not gen.guard.copies(words, self.originality):
                break
            self.rejected += 1
        self._line = line[::-1]

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        """The next token under `temperature` (0 = likeliest), optionally cut to top-k / top-p."""
        if self.echo:
            self.drawn_after = None
            return self._emit(self.echo.pop(0), 1.0, temperature)
        if self.originality is None:
            self.drawn_after = list(self.history)
            i, p = self._draw(temperature, top_k, top_p)
            return self._emit(i, p, temperature)
        if not self._line:
            self._write_line(temperature, top_k, top_p)
        i, p, t, self.drawn_after = self._line.pop()
        return self._emit(i, p, t)


class MarkovGenerator:
    """A loaded chain: `start(seed, prompt)` opens a MarkovStream."""

    word_tokens = True

    def __init__(self, name: str, card: dict, tok: WordTokenizer, rows: dict[int, dict[int, int]],
                 starts: dict[int, list[int]], nxt: dict[int, list[int]], cnt: dict[int, list[int]],
                 unigram: np.ndarray, guard: OriginalityGuard | None = None) -> None:
        self.name = name
        self.kind = "markov"
        self.card = card
        self.tok = tok
        self.order: int = card["order"]
        self._V = len(tok.vocab)
        self._rows = rows  # order -> {context key: row number}
        self._starts = starts  # order -> row start offsets (one extra at the end)
        self._nxt = nxt  # order -> next-token ids, row after row (ascending id within a row)
        self._cnt = cnt  # order -> their counts
        nz = np.nonzero(unigram)[0]
        self._uni_ids: list[int] = nz.tolist()
        self._uni_counts: list[int] = unigram[nz].tolist()
        self.newline = tok.index.get("\n")
        self.guard = guard
        self.is_word = [any(ch.isalpha() for ch in w) for w in tok.vocab]
        self._cache: dict[tuple, tuple[list[int], list[float], float]] = {}

    def _locate(self, history: list[int]) -> tuple[int, int, int]:
        """(order, start, end) of the successors of the longest context seen in training;
        order 0 means the unigram."""
        V = self._V
        for o in range(min(self.order, len(history)), 0, -1):
            if o == 1:
                key = history[-1]
            elif o == 2:
                key = history[-2] * V + history[-1]
            else:
                key = (history[-3] * V + history[-2]) * V + history[-1]
            r = self._rows[o].get(key)
            if r is not None:
                starts = self._starts[o]
                return o, starts[r], starts[r + 1]
        return 0, 0, 0

    def transitions(self, history: list[int]) -> tuple[list[int], list[int]]:
        """Next-token ids and counts after `history`, from the longest context seen (backing off)."""
        o, a, b = self._locate(history)
        if o == 0:
            return list(self._uni_ids), list(self._uni_counts)
        return self._nxt[o][a:b], self._cnt[o][a:b]

    def step(self, history: list[int], temperature: float, top_k: int, top_p: float,
             rng: random.Random) -> tuple[int, float]:
        """Choose the token after `history`: (id, probability of that choice)."""
        o, a, b = self._locate(history)
        # more than one blank line in a row is never chosen when anything else can follow: at low
        # temperature the chain would otherwise circle on empty lines
        stanza = self.newline is not None and history[-2:] == [self.newline, self.newline]
        n = b - a if o else len(self._uni_ids)
        if o and not stanza and not top_k and top_p >= 1.0 and n <= _BIG_ROW:
            nxt, cnt = self._nxt[o], self._cnt[o]
            if n == 1:
                return nxt[a], 1.0
            if temperature <= 0:
                best, j = -1, a
                for k in range(a, b):  # ids ascend within a row: the first maximum is the lowest id
                    if cnt[k] > best:
                        best, j = cnt[k], k
                return nxt[j], best / sum(cnt[a:b])
            ws = cnt[a:b] if temperature == 1.0 else [c ** (1.0 / temperature) for c in cnt[a:b]]
            total = sum(ws)
            x = rng.random() * total
            acc = 0.0
            for k, w in enumerate(ws):
                acc += w
                if x < acc:
                    return nxt[a + k], w / total
            return nxt[b - 1], ws[-1] / total  # rounding at the very top of the range
        ids, cum, best_p = self._distribution(o, a, b, temperature, top_k, top_p, stanza)
        if temperature <= 0:
            return ids[0], best_p
        x = rng.random() * cum[-1]
        lo, hi = 0, len(cum) - 1
        while lo < hi:  # first cumulative weight above x
            mid = (lo + hi) // 2
            if cum[mid] > x:
                hi = mid
            else:
                lo = mid + 1
        return ids[lo], (cum[lo] - (cum[lo - 1] if lo else 0.0)) / cum[-1]

    def _distribution(self, o: int, a: int, b: int, temperature: float, top_k: int, top_p: float,
                      stanza: bool) -> tuple[list[int], list[float], float]:
        """(ids, cumulative weights, p of the first) after temperature, top-k and top-p, likeliest
        first (ties: lower id first); cached, as scenes hold a temperature for many tokens."""
        key = (o, a, round(temperature, 4), top_k, round(top_p, 4), stanza)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if o:
            pairs = list(zip(self._nxt[o][a:b], self._cnt[o][a:b], strict=True))
        else:
            pairs = list(zip(self._uni_ids, self._uni_counts, strict=True))
        if stanza and len(pairs) > 1:
            pairs = [(i, c) for i, c in pairs if i != self.newline] or pairs
        total_count = sum(c for _, c in pairs)
        if temperature <= 0:
            best = max(c for _, c in pairs)
            first = min(i for i, c in pairs if c == best)
            out = ([first], [1.0], best / total_count)
        else:
            inv = 1.0 / temperature
            weighted = sorted(((c ** inv, i) for i, c in pairs), key=lambda wi: (-wi[0], wi[1]))
            if top_k and top_k < len(weighted):
                weighted = weighted[:top_k]
            if top_p < 1.0:
                total, acc, cut = sum(w for w, _ in weighted), 0.0, len(weighted)
                for k, (w, _) in enumerate(weighted):
                    acc += w
                    if acc >= top_p * total:
                        cut = k + 1
                        break
                weighted = weighted[:cut]
            cum, acc = [], 0.0
            for w, _ in weighted:
                acc += w
                cum.append(acc)
            out = ([i for _, i in weighted], cum, weighted[0][0] / acc)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = out
        return out

    def start(self, seed: int, prompt: str = "") -> MarkovStream:
        """Open a stream; prompt words the chain never saw are dropped with one warning."""
        return MarkovStream(self, seed, prompt)

    def start_batch(self, seeds: list[int], prompts: list[str] | None = None) -> SequentialBatch:
        """Independent streams stepped in turn (a chain has nothing to gain from batching)."""
        prompts = prompts or [""] * len(seeds)
        return SequentialBatch([self.start(s, p) for s, p in zip(seeds, prompts, strict=True)])


def load_markov(model_dir: Path, card: dict) -> MarkovGenerator:
    """Load a chain folder (model.json already read into `card`). Raises ModelFileError naming the file."""
    model_dir = Path(model_dir)
    card_path = model_dir / "model.json"
    order, vocab = card.get("order"), card.get("vocab")
    if order not in ORDERS:
        raise ModelFileError(f"{card_path}: key 'order' is {order!r}; allowed: 1, 2, 3")
    if not isinstance(vocab, list) or not vocab or not all(isinstance(w, str) for w in vocab):
        raise ModelFileError(f"{card_path}: key 'vocab' must be a non-empty list of strings")
    path = model_dir / "model.safetensors"
    if not path.exists():
        raise ModelFileError(f"{path}: missing (the chain's tables)")
    V = len(vocab)
    rows, starts, nxts, cnts = {}, {}, {}, {}
    try:
        arrays = load_file(str(path))
        for o in range(1, order + 1):
            ctx, nxt, cnt = arrays[f"ctx{o}"], arrays[f"next{o}"], arrays[f"count{o}"]
            if not all(np.issubdtype(a.dtype, np.integer) for a in (ctx, nxt, cnt)):
                raise ValueError(f"order {o} tables must hold integers, got {ctx.dtype}/{nxt.dtype}/{cnt.dtype}")
            if ctx.ndim != 2 or ctx.shape != (len(nxt), o) or cnt.shape != nxt.shape:
                raise ValueError(f"order {o} tables have mismatched shapes")
            if len(nxt) and (int(nxt.max()) >= V or int(ctx.max()) >= V or min(int(nxt.min()), int(ctx.min())) < 0
                             or int(cnt.min()) < 1):
                raise ValueError(f"order {o} tables point outside the vocabulary of {V} or hold counts < 1")
            keys = np.zeros(len(ctx), dtype=np.int64)
            for j in range(o):
                keys = keys * V + ctx[:, j].astype(np.int64)
            if len(keys) > 1 and bool((np.diff(keys) < 0).any()):
                raise ValueError(f"order {o} rows are not sorted by context")
            ukeys, first = np.unique(keys, return_index=True)
            rows[o] = dict(zip(ukeys.tolist(), range(len(ukeys)), strict=True))
            starts[o] = [*first.tolist(), len(keys)]
            nxts[o], cnts[o] = nxt.tolist(), cnt.tolist()
        unigram = arrays["unigram"]
        if not np.issubdtype(unigram.dtype, np.integer):
            raise ValueError(f"unigram counts must be integers, got {unigram.dtype}")
        if unigram.shape != (V,) or int(unigram.sum()) < 1:
            raise ValueError("unigram counts do not match the vocabulary")
        guard = None
        if "orig_words" in arrays:  # chains built before the guard carry no corpus words: no guard
            w = arrays["orig_words"]
            if w.ndim != 1 or (len(w) and (int(w.max()) >= V or int(w.min()) < -1)):
                raise ValueError("orig_words point outside the vocabulary")
            guard = OriginalityGuard(w)
    except Exception as e:
        raise ModelFileError(f"{path}: unreadable or does not match model.json ({e})") from None
    return MarkovGenerator(model_dir.name, card, WordTokenizer(vocab), rows, starts, nxts, cnts, unigram, guard)


def bench_case(gen: MarkovGenerator, seconds: float) -> dict:
    """The contract's bench case: engine tokens/s against a plain Python chain (dict of Counters,
    random.choices per token) on the same tables, producing the same kind of output (each token's
    text and probability) at temperature 0.8."""
    temperature = 0.8
    naive: dict[tuple, Counter] = {}
    for o in range(1, gen.order + 1):
        starts, nxt, cnt = gen._starts[o], gen._nxt[o], gen._cnt[o]
        for key, r in gen._rows[o].items():
            ctx = []
            for _ in range(o):
                key, t = divmod(key, gen._V)
                ctx.insert(0, t)
            a, b = starts[r], starts[r + 1]
            naive[tuple(ctx)] = Counter(dict(zip(nxt[a:b], cnt[a:b], strict=True)))
    unigram = Counter(dict(zip(gen._uni_ids, gen._uni_counts, strict=True)))
    rng = random.Random(1)
    hist = [gen.newline if gen.newline is not None else 0]
    tail = [""]

    def naive_step() -> Token:
        c = unigram
        for o in range(min(gen.order, len(hist)), 0, -1):
            if tuple(hist[-o:]) in naive:
                c = naive[tuple(hist[-o:])]
                break
        words, weights = list(c.keys()), [w ** (1 / temperature) for w in c.values()]
        k = rng.choices(range(len(words)), weights)[0]
        hist.append(words[k])
        del hist[:-4]
        text = gen.tok.piece(words[k], tail[0])
        tail[0] = (tail[0] + text)[-8:]
        return Token(text, weights[k] / sum(weights), temperature)

    def timed(step) -> float:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(100):
                step()
            n += 100
        return n / (time.perf_counter() - t0)

    s = gen.start(1)
    s.set_originality(None)  # the same work as the baseline: the guard's cost is reported apart
    eng = timed(lambda: s.next(temperature))
    base = timed(naive_step)
    case = {"model": gen.name, "kind": "markov", "streams": 1, "engine_tok_s": round(eng, 1),
            "baseline_tok_s": round(base, 1), "ratio": round(eng / base, 2)}
    if gen.guard is not None:
        g = gen.start(1)
        case["guarded_tok_s"] = round(timed(lambda: g.next(temperature)), 1)  # originality guard on
    return case


def train_from_args(corpus: Corpus, args: Any) -> str:
    """`run.py train --kind markov`: an n-gram chain of --order words."""
    train_markov(corpus, args.out, args.order, args.seed)
    return f"wrote {args.out}"
