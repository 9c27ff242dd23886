"""An originality guard for word chains, after markovify's `test_sentence_output`.

A generated line of n words is rejected when it shares a run of more than
min(total, round(ratio * n)) consecutive words with one corpus line (markovify's defaults:
ratio 0.7, total 15). Only words count (punctuation and case are ignored), and runs never cross a
corpus line break, so "HE stood among a crowd at Dromahair;" is caught however it is punctuated.

The corpus is kept as one int32 array of word ids with -1 between lines; an index of the positions
of each word makes a check a handful of numpy comparisons on short arrays (tens of microseconds a
line), cheap beside writing the line.
"""

from __future__ import annotations

import numpy as np

DEFAULT_RATIO = 0.7
DEFAULT_TOTAL = 15


def corpus_words(ids: list[int], is_word: list[bool], newline: int | None) -> np.ndarray:
    """The guard's corpus array: word ids in order, -1 at every line break, punctuation dropped."""
    out = []
    for i in ids:
        if i == newline:
            if out and out[-1] != -1:
                out.append(-1)
        elif is_word[i]:
            out.append(i)
    return np.array(out, dtype=np.int32)


class OriginalityGuard:
    """Answers "does this line copy a corpus line?" for one chain's corpus."""

    def __init__(self, words: np.ndarray) -> None:
        self.words = words
        order = np.argsort(words, kind="stable")
        sorted_ids = words[order]
        # positions of word w: order[lo[w]:hi[w]], searched lazily by np.searchsorted
        self._order = order
        self._sorted = sorted_ids

    def _positions(self, w: int) -> np.ndarray:
        lo = np.searchsorted(self._sorted, w, side="left")
        hi = np.searchsorted(self._sorted, w, side="right")
        return self._order[lo:hi]

    def has_run(self, run: list[int]) -> bool:
        """True when the words of `run` occur consecutively inside one corpus line."""
        pos = self._positions(run[0])
        n = len(self.words)
        for j in range(1, len(run)):
            pos = pos[pos + j < n]
            pos = pos[self.words[pos + j] == run[j]]
            if not len(pos):
                return False
        return bool(len(pos))

    def copies(self, line_words: list[int], ratio: float = DEFAULT_RATIO, total: int = DEFAULT_TOTAL) -> bool:
        """markovify's rule: a run longer than min(total, round(ratio * n)) words is a copy."""
        n = len(line_words)
        k = min(total, int(round(ratio * n))) + 1
        if n < k or n == 0:
            return False
        return any(self.has_run(line_words[s:s + k]) for s in range(n - k + 1))
