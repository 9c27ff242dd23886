"""A scene's `cowrite` table: the performer chooses words (validated from the scene file).

    cowrite = { every = "word", words = 5, choices = 5, wait = 4.0 }

every: "word" (every `words`-th word), "line" (the first word of each line) or "hold" (the next
word after the performer asks: /lectern/choose 0, the H key). choices: candidates shown (1..9).
wait: seconds the stage waits for a pick; then the model's own word stands.
It travels in the `scene` event, so a transcript re-renders with the same strip of candidates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from performance.show.schema import Table

EVERY = ("word", "line", "hold")
MAX_CHOICES = 9  # keys 1..9
MAX_WAIT_S = 600.0


@dataclass(frozen=True, slots=True)
class CowriteSettings:
    """A scene's cowrite table."""

    every: str = "word"
    words: int = 1  # every = "word": offer at every N-th word
    choices: int = 5
    wait: float = 4.0

    @classmethod
    def from_table(cls, t: Table) -> CowriteSettings:
        """Validate cowrite; one ConfigError line naming the file, key and what is allowed."""
        every = t.str("every", "word", EVERY)
        words = t.int("words", 1, lo=1, hi=1000)
        if every != "word" and t.has("words"):
            raise t.error("words", words, 'only with every = "word" (every N-th word)')
        out = cls(every=every, words=words, choices=t.int("choices", 5, lo=1, hi=MAX_CHOICES),
                  wait=t.float("wait", 4.0, lo=0.1, hi=MAX_WAIT_S))
        t.check_unknown()
        return out

    def to_dict(self) -> dict:
        """JSON-able (the scene event carries it)."""
        return asdict(self)
