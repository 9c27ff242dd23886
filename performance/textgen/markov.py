"""A word Markov chain (orders 1–3) behind the one generator interface.

Tokens are words, punctuation and line breaks, so the chain keeps lines and stanzas. Temperature
reshapes the transition counts (p ∝ count^(1/T); 0 = the likeliest next word, ties to the first
in vocabulary order). An unseen context backs off to shorter ones down to the unigram, so the chain
never dead-ends. Tables are stored as int32 arrays in safetensors: loading runs no code.
"""

from __future__ import annotations

import bisect
import random
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from performance import __version__
from performance.textgen.base import ModelFileError, SequentialBatch, Token
from performance.textgen.corpus import Corpus
from performance.textgen.registry import write_card
from performance.textgen.tokenizers import WordTokenizer


def _count(ids: list[int], order: int) -> dict[tuple, Counter]:
    table: dict[tuple, Counter] = defaultdict(Counter)
    for i in range(order, len(ids)):
        table[tuple(ids[i - order:i])][ids[i]] += 1
    return table


def train_markov(corpus: Corpus, out_dir: Path, order: int, seed: int) -> None:
    """Build the chain from `corpus` into the model folder `out_dir`."""
    if order not in (1, 2, 3):
        raise ModelFileError(f"--order {order}: allowed 1, 2 or 3")
    t0 = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = WordTokenizer([w for w, _ in sorted(Counter(WordTokenizer.split(corpus.text)).items())])
    ids = tok.encode(corpus.text)
    arrays: dict[str, np.ndarray] = {"unigram": np.bincount(ids, minlength=len(tok.vocab)).astype(np.int32)}
    for o in range(1, order + 1):
        table = _count(ids, o)
        rows = [(ctx, nxt, c) for ctx, counter in table.items() for nxt, c in counter.items()]
        rows.sort()
        arrays[f"ctx{o}"] = np.array([r[0] for r in rows], dtype=np.int32).reshape(-1, o)
        arrays[f"next{o}"] = np.array([r[1] for r in rows], dtype=np.int32)
        arrays[f"count{o}"] = np.array([r[2] for r in rows], dtype=np.int32)
    save_file(arrays, str(out_dir / "model.safetensors"))
    card = {"kind": "markov", "name": out_dir.name, "engine_version": __version__, "format": 1, "order": order,
            "hyperparameters": {"order": order}, "vocab": tok.vocab, "vocab_size": len(tok.vocab),
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
    def __init__(self, gen: MarkovGenerator, seed: int, prompt: str) -> None:
        self.gen = gen
        self.rng = random.Random(seed)
        self.tail = ""
        prompt_ids = gen.tok.encode(prompt, warn=True) if prompt else []
        newline = gen.tok.index.get("\n")
        self.history: list[int] = ([newline] if newline is not None else []) + prompt_ids
        self.echo = list(prompt_ids)

    def _piece(self, i: int) -> str:
        text = self.gen.tok.piece(i, self.tail)
        self.tail = (self.tail + text)[-8:]
        return text

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        if self.echo:
            return Token(self._piece(self.echo.pop(0)), 1.0, temperature)
        ids, cum = self.gen.distribution(self.history, temperature, top_k, top_p)
        if temperature <= 0:
            j = 0  # distribution() puts the likeliest (lowest id on ties) first
        else:
            j = bisect.bisect_right(cum, self.rng.random() * cum[-1])
            j = min(j, len(ids) - 1)
        p = (cum[j] - (cum[j - 1] if j else 0.0)) / cum[-1]
        i = ids[j]
        self.history.append(i)
        if len(self.history) > 8:
            del self.history[:-4]
        return Token(self._piece(i), p, temperature)


class MarkovGenerator:
    """A loaded chain."""

    word_tokens = True

    def __init__(self, name: str, card: dict, tok: WordTokenizer, tables: dict, unigram: np.ndarray) -> None:
        self.name = name
        self.kind = "markov"
        self.card = card
        self.tok = tok
        self.order = card["order"]
        self.tables = tables  # order -> {ctx tuple: (next ids, counts)}
        nz = np.nonzero(unigram)[0]
        self.unigram = (nz.tolist(), unigram[nz].tolist())
        self.newline = tok.index.get("\n")
        self._cache: dict = {}

    def _locate(self, history: list[int]) -> tuple[int, int, int, int]:
        """(order, row, start, end) of the longest context seen in training; (0, 0, 0, 0) = unigram."""
        V = len(self.tok.vocab)
        for o in range(min(self.order, len(history)), 0, -1):
            ukeys, starts, _, _ = self.tables[o]
            key = 0
            for t in history[-o:]:
                key = key * V + t
            i = int(ukeys.searchsorted(key))
            if i < len(ukeys) and ukeys[i] == key:
                return o, i, int(starts[i]), int(starts[i + 1])
        return 0, 0, 0, 0

    def transitions(self, history: list[int]) -> tuple[list[int], list[int]]:
        """Next-token ids and counts for the longest context seen in training (backing off)."""
        o, _, a, b = self._locate(history)
        if o == 0:
            return self.unigram
        _, _, nxt, cnt = self.tables[o]
        return nxt[a:b].tolist(), cnt[a:b].tolist()

    def distribution(self, history: list[int], temperature: float, top_k: int, top_p: float) -> tuple[list[int], list[float]]:
        """(ids, cumulative weights) after temperature, top-k and top-p; cached, as scenes reuse temperatures.

        More than one blank line in a row is never chosen when anything else can follow: at low
        temperature a chain would otherwise circle on empty lines.
        """
        o, i, a, b = self._locate(history)
        stanza = self.newline is not None and history[-2:] == [self.newline, self.newline] and b - a != 1
        key = (o, i, round(temperature, 4), top_k, round(top_p, 4), stanza)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        ids, counts = self.transitions(history)
        pairs = [(i, c) for i, c in zip(ids, counts, strict=True) if not (stanza and i == self.newline)]
        if temperature <= 0:
            best = max(c for _, c in pairs)
            first = min(i for i, c in pairs if c == best)
            out = ([first], [best / sum(c for _, c in pairs)])
        else:
            inv = 1.0 / temperature
            weighted = sorted(((c ** inv, i) for i, c in pairs), key=lambda wc: (-wc[0], wc[1]))
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
            out = ([i for _, i in weighted], cum)
        if len(self._cache) > 5_000:
            self._cache.clear()
        self._cache[key] = out
        return out

    def start(self, seed: int, prompt: str = "") -> MarkovStream:
        return MarkovStream(self, seed, prompt)

    def start_batch(self, seeds: list[int], prompts: list[str] | None = None) -> SequentialBatch:
        prompts = prompts or [""] * len(seeds)
        return SequentialBatch([self.start(s, p) for s, p in zip(seeds, prompts, strict=True)])


def load_markov(model_dir: Path, card: dict) -> MarkovGenerator:
    path = model_dir / "model.safetensors"
    if not path.exists():
        raise ModelFileError(f"{path}: missing (the chain's tables)")
    try:
        arrays = load_file(str(path))
        order = int(card["order"])
        vocab = card["vocab"]
        tables = {}
        V = len(vocab)
        for o in range(1, order + 1):
            ctx, nxt, cnt = arrays[f"ctx{o}"], arrays[f"next{o}"], arrays[f"count{o}"]
            if ctx.shape[0] != nxt.shape[0] or (len(nxt) and int(nxt.max()) >= V):
                raise ValueError(f"order {o} tables do not match the vocabulary")
            # a context as one base-V number: rows sorted by context are sorted by key, so a lookup
            # is a binary search and loading builds no Python objects at all
            keys = np.zeros(len(ctx), dtype=np.int64)
            for j in range(o):
                keys = keys * V + ctx[:, j].astype(np.int64)
            ukeys, starts = np.unique(keys, return_index=True)
            tables[o] = (ukeys, np.append(starts, len(keys)), nxt, cnt)
        unigram = arrays["unigram"]
    except ModelFileError:
        raise
    except Exception as e:
        raise ModelFileError(f"{path}: unreadable or does not match model.json ({e})") from None
    return MarkovGenerator(model_dir.name, card, WordTokenizer(vocab), tables, unigram)


def bench_case(gen: MarkovGenerator, seconds: float) -> dict:
    """Engine tokens/s against a plain Python chain (dict of Counters, random.choices per token)
    producing the same output: each token's text and probability."""
    naive: dict[tuple, Counter] = defaultdict(Counter)
    V = len(gen.tok.vocab)
    for o, (ukeys, starts, nxt, cnt) in gen.tables.items():
        for i, key in enumerate(ukeys.tolist()):
            ctx = []
            for _ in range(o):
                key, t = divmod(key, V)
                ctx.insert(0, t)
            a, b = int(starts[i]), int(starts[i + 1])
            naive[tuple(ctx)] = Counter(dict(zip(nxt[a:b].tolist(), cnt[a:b].tolist(), strict=True)))
    rng = random.Random(1)
    hist = [gen.tok.index.get("\n", 0)]

    tail = [""]

    def naive_step() -> Token:
        """The same output as the engine (a Token with its text and probability), done plainly."""
        for o in range(min(gen.order, len(hist)), 0, -1):
            c = naive.get(tuple(hist[-o:]))
            if c:
                words, weights = list(c.keys()), [w ** (1 / 0.8) for w in c.values()]
                k = rng.choices(range(len(words)), weights)[0]
                hist.append(words[k])
                del hist[:-4]
                text = gen.tok.piece(words[k], tail[0])
                tail[0] = (tail[0] + text)[-8:]
                return Token(text, weights[k] / sum(weights), 0.8)
        hist.append(rng.randrange(len(gen.tok.vocab)))
        return Token(gen.tok.vocab[hist[-1]], 1 / len(gen.tok.vocab), 0.8)

    def timed(step) -> float:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            step()
            n += 1
        return n / (time.perf_counter() - t0)

    s = gen.start(1)
    eng = timed(lambda: s.next(0.8))
    base = timed(naive_step)
    return {"model": gen.name, "kind": "markov", "streams": 1, "engine_tok_s": round(eng, 1),
            "baseline_tok_s": round(base, 1), "ratio": round(eng / base, 2)}
