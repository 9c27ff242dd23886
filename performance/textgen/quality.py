"""Does a model write verse of its own? Two figures from ten seeds at temperature 0.7:
real_words: share of generated words (letters only, lowercased) that are words of the corpus;
copied_6grams: share of generated word 6-grams that occur verbatim in the corpus (reciting);
copied_lines: share of generated lines of three or more words whose words are exactly those of a
corpus line (punctuation and case aside): whole lines recited.
"""

from __future__ import annotations

import re

from performance.textgen.corpus import DEFAULT_CORPUS, read_corpus

_WORD = re.compile(r"[a-z]+")


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def measure(gen, corpus_path: str | None = None, seeds: int = 10, words_per_seed: int = 520,
            temperature: float = 0.7, originality: float | None | bool = True) -> dict:
    """The figures above for `gen`. `originality`: True leaves each stream as it starts; None or a
    share is handed to streams that have an originality guard (markov)."""

    corpus = read_corpus(corpus_path or DEFAULT_CORPUS)
    cwords = words_of(corpus.text)
    vocab = set(cwords)
    grams = {tuple(cwords[i:i + 6]) for i in range(len(cwords) - 5)}
    clines = {tuple(words_of(ln)) for ln in corpus.text.split("\n")}
    total_words, real, total_grams, copied = 0, 0, 0, 0
    total_lines, copied_lines = 0, 0
    for seed in range(seeds):
        s = gen.start(seed)
        if originality is not True and hasattr(s, "set_originality"):
            s.set_originality(originality)
        text = ""
        while len(words_of(text)) < words_per_seed + 1:
            text += s.next(temperature).text
        ws = words_of(text)[:words_per_seed]
        total_words += len(ws)
        real += sum(w in vocab for w in ws)
        g = [tuple(ws[i:i + 6]) for i in range(len(ws) - 5)]
        total_grams += len(g)
        copied += sum(x in grams for x in g)
        lines = [tuple(words_of(ln)) for ln in text.split("\n")[:-1]]
        lines = [ln for ln in lines if len(ln) >= 3]
        total_lines += len(lines)
        copied_lines += sum(ln in clines for ln in lines)
    return {"words": total_words, "real_words": round(real / total_words, 4),
            "copied_6grams": round(copied / max(1, total_grams), 4),
            "copied_lines": round(copied_lines / max(1, total_lines), 4), "lines": total_lines, "temperature": temperature, "seeds": seeds}


# Reduced precision is used only where it costs at most this much against fp32 (issue 16).
MAX_LOSS_COST = 0.02  # nats per char of validation text
MAX_REAL_WORDS_COST = 0.01  # share of real words (one point)


def fused_loss(fused, ids: list[int], chars: int, rows: int = 16) -> float:
    """Teacher-forced loss of the fused step on `ids` (a text of `chars` chars), in nats per char;
    the text is cut into `rows` segments stepped as one batch."""
    # lazy: numpy and the sound/x-ray code load only when that part starts
    import numpy as np

    n = (len(ids) - 1) // rows
    if n < 1:
        raise ValueError(f"validation text too short: {len(ids)} tokens for {rows} rows")
    seq = np.asarray(ids[: rows * n + 1])
    starts = np.arange(rows) * n
    state = fused.zero_state(rows)
    total = 0.0
    for t in range(n):
        logits = fused.step(seq[starts + t], state).astype(np.float64)
        m = logits.max(axis=1, keepdims=True)
        logz = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        total += float((logz - logits[np.arange(rows), seq[starts + t + 1]]).sum())
    return total / (rows * n * chars / len(ids))  # tokens scored × chars per token


def precision_cost(gen, corpus_path: str | None = None, val_chars: int = 6000) -> dict:
    """For each reduced precision of the fused step: validation loss and real-word rate against
    fp32 on the same text, and whether it is within the allowed cost. Leaves `gen` as it was."""

    text = read_corpus(corpus_path or DEFAULT_CORPUS).text[-val_chars:]
    ids = gen.tok.encode(text)
    was = gen.fused.precision
    out: dict = {"case": "precision", "val_chars": len(text)}
    try:
        ref = None
        for p in ("fp32", "fp16", "int8"):
            gen.set_precision(p)
            q = measure(gen)
            loss = fused_loss(gen.fused, ids, len(text))
            row = {"val_loss": round(loss, 4), "real_words": q["real_words"]}
            if ref is None:
                ref = row
            else:
                row["loss_cost"] = round(loss - ref["val_loss"], 4)
                row["real_words_cost"] = round(ref["real_words"] - q["real_words"], 4)
                row["pays"] = row["loss_cost"] <= MAX_LOSS_COST and row["real_words_cost"] <= MAX_REAL_WORDS_COST
            out[p] = row
    finally:
        gen.set_precision(was)
    return out
