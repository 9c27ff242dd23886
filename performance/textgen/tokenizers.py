"""Char and word tokenizers. Word level keeps punctuation and line breaks as tokens, so poems keep
their lines and stanzas; `piece(i, prev)` gives the exact text to append (spaces included)."""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections import Counter

_WORD_RE = re.compile(r"\n|[^\W\d_]+(?:['’][^\W\d_]+)*|\d+|[^\w\s]", re.UNICODE)
_NO_SPACE_BEFORE = set(".,;:!?)]}’”'\"-—")
_NO_SPACE_AFTER = set("([{‘“\n-—")
_MAP = {"’": "'", "‘": "'", "“": '"', "”": '"', "—": "-", "–": "-", "…": "...", "\t": " ", "\r": ""}
UNK = "<unk>"


def _fold(ch: str) -> str:
    """Map a character the vocabulary lacks onto one it may have: curly quotes, accents."""
    if ch in _MAP:
        return _MAP[ch]
    base = unicodedata.normalize("NFKD", ch)
    base = "".join(c for c in base if not unicodedata.combining(c))
    return base


class CharTokenizer:
    kind = "char"

    def __init__(self, vocab: list[str]) -> None:
        self.vocab = vocab
        self.index = {c: i for i, c in enumerate(vocab)}

    @classmethod
    def build(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    def encode(self, text: str, warn: bool = False) -> list[int]:
        out, dropped = [], []
        for ch in text:
            if ch in self.index:
                out.append(self.index[ch])
                continue
            mapped = _fold(ch)
            if mapped and all(c in self.index for c in mapped):
                out.extend(self.index[c] for c in mapped)
            else:
                dropped.append(ch)
        if dropped and warn:
            warnings.warn(f"prompt: {len(dropped)} character(s) not in the model's vocabulary were dropped: "
                          f"{''.join(sorted(set(dropped)))!r}", stacklevel=3)
        return out

    def piece(self, i: int, prev: str = "") -> str:
        return self.vocab[i]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids)


class WordTokenizer:
    kind = "word"

    def __init__(self, vocab: list[str]) -> None:
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}
        self.unk = self.index.get(UNK, 0)

    @staticmethod
    def split(text: str) -> list[str]:
        return _WORD_RE.findall(text.replace("\r", ""))

    @classmethod
    def build(cls, text: str, max_vocab: int = 30000, min_count: int = 1) -> WordTokenizer:
        counts = Counter(cls.split(text))
        words = [w for w, c in counts.most_common(max_vocab - 1) if c >= min_count]
        return cls([UNK, *sorted(words)])

    def encode(self, text: str, warn: bool = False) -> list[int]:
        out, unknown = [], []
        for w in self.split(text):
            if w in self.index:
                out.append(self.index[w])
            elif w.lower() in self.index:
                out.append(self.index[w.lower()])
            elif _fold(w) in self.index:
                out.append(self.index[_fold(w)])
            else:
                unknown.append(w)
        if unknown and warn:
            warnings.warn(f"prompt: {len(unknown)} word(s) not in the model's vocabulary were dropped: "
                          f"{', '.join(sorted(set(unknown))[:8])}", stacklevel=3)
        return out

    def piece(self, i: int, prev: str = "") -> str:
        w = self.vocab[i]
        if w == UNK:
            w = "…"
        if w == "\n" or not prev or prev[-1] in _NO_SPACE_AFTER or prev[-1] == " ":
            return w
        if w[0] in _NO_SPACE_BEFORE:
            return w
        return " " + w

    def decode(self, ids: list[int]) -> str:
        text = ""
        for i in ids:
            text += self.piece(i, text)
        return text


def make_tokenizer(kind: str, vocab: list[str]) -> CharTokenizer | WordTokenizer:
    return CharTokenizer(vocab) if kind.startswith("char") else WordTokenizer(vocab)
