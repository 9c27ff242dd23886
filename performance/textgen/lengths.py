"""When is a poem long enough? One incremental counter for words, chars, lines and sentences.

Shared by `run.py sample` and the engine so "--words 88" and a scene's `length = {words = 88}`
mean the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = ("words", "chars", "lines", "sentences")
DEFAULT_SENTENCE_WORDS = 40  # a model that never writes . ! ? still yields one sentence-sized poem
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")
_SENTENCE_ENDS = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")


@dataclass(frozen=True, slots=True)
class LengthRule:
    """A poem's length: `n` of `unit` (words, chars, lines or sentences)."""

    unit: str
    n: int
    max_words: int = 0  # sentences only: n sentences end here at the latest (0: the default cap)

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"length unit {self.unit!r}; allowed: {', '.join(UNITS)}")
        if self.n < 1:
            raise ValueError(f"length {self.n}; must be >= 1")

    def max_tokens(self, word_tokens: bool) -> int:
        """A hard cap so a model that never writes '.' or '\\n' still ends its poem."""
        per_unit = {"words": 3 if word_tokens else 12, "chars": 2, "lines": 40 if word_tokens else 200,
                    "sentences": 80 if word_tokens else 400}[self.unit]
        return max(16, self.n * per_unit)


class LengthCounter:
    """Feed token texts; `feed` returns True once the poem is complete (this token included).

    word_tokens: the generator emits whole words as tokens (word-level, markov, spreeder), so a
    word is complete when its token arrives; char-level words complete at the next non-letter.
    """

    def __init__(self, rule: LengthRule, word_tokens: bool) -> None:
        self.rule = rule
        self.word_tokens = word_tokens
        self.text = ""
        self.tokens = 0
        self._cap = rule.max_tokens(word_tokens)
        self._mark = 0  # a whitespace position: words before it are counted in _words_before
        self._words_before = 0

    def words(self) -> int:
        """Words in the text so far. Incremental: a word never contains whitespace, so the text can
        be cut at its last space or newline and only the tail rescanned (a whole rescan per token
        was 16 % of a poem flick's generation time)."""
        cut = max(self.text.rfind(" ", self._mark), self.text.rfind("\n", self._mark))
        if cut > self._mark:
            self._words_before += len(_WORD.findall(self.text, self._mark, cut))
            self._mark = cut
        return self._words_before + len(_WORD.findall(self.text, self._mark))

    def feed(self, token_text: str) -> bool:
        self.tokens += 1
        self.text += token_text
        if self.tokens >= self._cap:
            return True
        unit, n = self.rule.unit, self.rule.n
        if unit == "chars":
            return len(self.text) >= n
        if unit == "words":
            words = self.words()
            if words < n:
                return False
            if self.word_tokens:
                return bool(_WORD.search(token_text)) or words > n
            return not (self.text[-1:].isalpha() or self.text[-1:] in "'’")
        if unit == "lines":
            if "\n" not in token_text:
                return False
            lines = [ln for ln in self.text.split("\n")[:-1] if ln.strip()]
            return len(lines) >= n
        # sentences: n ends of . ! ? (with closing quotes), or the word cap at a word's end
        cap = (self.rule.max_words or DEFAULT_SENTENCE_WORDS) * n
        if _SENTENCE_END.search(token_text.rstrip()) and token_text.strip():
            if len(_SENTENCE_ENDS.findall(self.text)) >= n:
                return True
        if len(_WORD.findall(self.text)) >= cap:
            return self.word_tokens or not (self.text[-1:].isalpha() or self.text[-1:] in "'’")
        return False


def trim_poem(text: str) -> str:
    """Strip blank lines and trailing spaces at both ends, keep inner stanzas."""
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip("\n")
