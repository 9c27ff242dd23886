"""Does a model write verse of its own? Two figures from ten seeds at temperature 0.7:

real_words: share of generated words (letters only, lowercased) that are words of the corpus;
copied_6grams: share of generated word 6-grams that occur verbatim in the corpus (reciting);
copied_lines: share of generated lines of three or more words whose words are exactly those of a
corpus line (punctuation and case aside): whole lines recited.
"""

from __future__ import annotations

import re

from performance.textgen.corpus import read_corpus

_WORD = re.compile(r"[a-z]+")


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def measure(gen, corpus_path: str | None = None, seeds: int = 10, words_per_seed: int = 520,
            temperature: float = 0.7, originality: float | None | bool = True) -> dict:
    """The figures above for `gen`. `originality`: True leaves each stream as it starts; None or a
    share is handed to streams that have an originality guard (markov)."""
    from performance.textgen.corpus import DEFAULT_CORPUS

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
