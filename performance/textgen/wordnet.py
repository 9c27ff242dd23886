"""A small reader for the WordNet 3.0 database files Debian ships in wordnet-base.

It reads index.*, data.* and *.exc directly (by byte offset), so it needs no `lexnames` file —
Debian's package has none, and nltk's reader refuses to start without it. Only what Spreeder
needs: lemmas → synsets (most frequent sense first), synonyms, hypernyms, hyponyms, and morphy.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from performance.textgen.base import ModelFileError

DEFAULT_DIR = Path(os.environ.get("LECTERN_WORDNET_DIR", "/usr/share/wordnet"))
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_SUFFIXES = {
    "n": [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y")],
    "v": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
    "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    "r": [],
}


class WordNet:
    """Lookups over one WordNet folder. Raises ModelFileError if the files are not there."""

    def __init__(self, folder: Path | str = DEFAULT_DIR) -> None:
        self.folder = Path(folder)
        missing = [f"{kind}.{name}" for name in POS_FILES.values() for kind in ("index", "data")
                   if not (self.folder / f"{kind}.{name}").exists()]
        if missing:
            raise ModelFileError(
                f"WordNet files not found in {self.folder} (missing {', '.join(missing[:3])}"
                f"{'…' if len(missing) > 3 else ''}): install them with `sudo apt-get install wordnet-base` "
                "(or set LECTERN_WORDNET_DIR to a WordNet 3.0 dict folder)")
        self.index: dict[str, dict[str, list[int]]] = {p: {} for p in POS_FILES}
        for pos, name in POS_FILES.items():
            with open(self.folder / f"index.{name}", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith(" "):
                        continue
                    parts = line.split()
                    lemma, n_synsets, n_ptr = parts[0], int(parts[2]), int(parts[3])
                    offsets = parts[4 + n_ptr + 2:4 + n_ptr + 2 + n_synsets]
                    self.index[pos][lemma] = [int(o) for o in offsets]
        self.exceptions: dict[str, dict[str, list[str]]] = {p: {} for p in POS_FILES}
        for pos, name in POS_FILES.items():
            exc = self.folder / f"{name}.exc"
            if exc.exists():
                for line in exc.read_text(encoding="utf-8", errors="replace").splitlines():
                    parts = line.split()
                    if len(parts) >= 2:
                        self.exceptions[pos].setdefault(parts[0], []).extend(parts[1:])
        self._data = {pos: open(self.folder / f"data.{name}", "rb") for pos, name in POS_FILES.items()}  # noqa: SIM115

    def close(self) -> None:
        for f in self._data.values():
            f.close()

    def morphy(self, word: str, pos: str) -> str | None:
        """The base form of `word` as `pos`, or None: exceptions first, then suffix rules."""
        w = word.lower()
        if w in self.index[pos]:
            return w
        for base in self.exceptions[pos].get(w, []):
            if base in self.index[pos]:
                return base
        for suffix, ending in _SUFFIXES[pos]:
            if w.endswith(suffix) and len(w) > len(suffix) + 1:
                base = w[: len(w) - len(suffix)] + ending
                if base in self.index[pos]:
                    return base
        return None

    @lru_cache(maxsize=200_000)  # noqa: B019  (one WordNet per process; the cache is the point)
    def synset(self, pos: str, offset: int) -> tuple[tuple[str, ...], tuple[tuple[str, str, int], ...]]:
        """(lemmas, pointers as (symbol, pos, offset)) of the synset at `offset`."""
        f = self._data[pos]
        f.seek(offset)
        line = f.readline().decode("utf-8", errors="replace")
        parts = line.split(" | ")[0].split()
        n_words = int(parts[3], 16)
        lemmas = tuple(parts[4 + 2 * i] for i in range(n_words))
        k = 4 + 2 * n_words
        n_ptr = int(parts[k])
        ptrs = []
        for i in range(n_ptr):
            sym, off, ppos = parts[k + 1 + 4 * i], parts[k + 2 + 4 * i], parts[k + 3 + 4 * i]
            ppos = "a" if ppos == "s" else ppos
            ptrs.append((sym, ppos, int(off)))
        return lemmas, tuple(ptrs)

    def is_proper(self, lemma: str, pos: str = "n") -> bool:
        """Whether `lemma`'s first sense is a name (its synset spells it with a capital: Adam, Satan)."""
        offsets = self.index[pos].get(lemma)
        if not offsets:
            return False
        lemmas = [w.split("(")[0] for w in self.synset(pos, offsets[0])[0]]
        return lemma not in lemmas and any(w.lower() == lemma and w[:1].isupper() for w in lemmas)

    def related(self, lemma: str, pos: str, senses: int = 2, cap: int = 16) -> list[str]:
        """Synonyms, hypernyms and hyponyms of the first `senses` senses of `lemma` (single words),
        nearest first, at most `cap` (a flower has a hundred hyponyms; a poem wants a few)."""
        out: list[str] = []
        for offset in self.index[pos].get(lemma, [])[:senses]:
            lemmas, ptrs = self.synset(pos, offset)
            out.extend(lemmas)
            for sym, ppos, off in ptrs:
                if sym in ("@", "~", "&") and ppos == pos:
                    out.extend(self.synset(pos, off)[0][:3])
        seen, result = {lemma}, []
        for w in out:
            w = w.split("(")[0]
            if w not in seen and w.isalpha() and w.islower():  # capitalised lemmas are proper names
                seen.add(w)
                result.append(w)
        return result[:cap]
