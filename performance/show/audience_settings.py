"""A setlist's `[audience]` table: words from the audience (off by default), and the one rule
that says whether a word is taken — read by the audience page's server (a first, cheap refusal)
and by the engine (the word that counts), so both refuse the same words with the same line.

    [audience]
    words = true                 # the audience page is served with --remote (off by default)
    blocklist = ["word", ...]    # refused, as the scene's own [blocklist] words are
    max_chars = 24               # letters in a word (1..64)
    per_client_per_minute = 2    # words one address may send a minute
    total_per_minute = 30        # words all addresses together may send a minute
    offer = 3                    # 0: the page has a text field; N: it offers N of `choices` to pick
    choices = ["salt", ...]      # the words offered (needed when offer > 0)

A word is one word of letters (any alphabet; an inner hyphen or apostrophe allowed: "salt-marsh",
"o'er"), lower-cased. `RateLimit` counts in a sliding minute on a clock it is given (the engine's
time under the fake clock in tests, time.monotonic in the page's server).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import asdict, dataclass

from performance.show.schema import Table

MAX_WORD_CHARS = 64
MAX_CHOICES = 200
WINDOW_S = 60.0
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")


@dataclass(frozen=True, slots=True)
class AudienceSettings:
    """A setlist's audience table (None on the Setlist: no audience page)."""

    words: bool = False
    blocklist: frozenset[str] = frozenset()
    max_chars: int = 24
    per_client_per_minute: int = 2
    total_per_minute: int = 30
    offer: int = 0
    choices: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, t: Table) -> AudienceSettings:
        """Validate [audience]; one ConfigError line naming the file, key and what is allowed."""
        max_chars = t.int("max_chars", 24, lo=1, hi=MAX_WORD_CHARS)
        choices = tuple(w.strip().lower() for w in (t.list("choices", [], str) or []))
        for w in choices:
            if refusal(w, max_chars) is not None:
                raise t.error("choices", w, f"single words of letters, at most {max_chars} characters each")
        if len(choices) > MAX_CHOICES:
            raise t.error("choices", len(choices), f"at most {MAX_CHOICES} words")
        offer = t.int("offer", 0, lo=0, hi=9)
        if offer and len(choices) < offer:
            raise t.error("offer", offer, f"needs at least {offer} words in choices (it has {len(choices)})")
        out = cls(words=bool(t.bool("words", False)),
                  blocklist=frozenset(w.strip().lower() for w in (t.list("blocklist", [], str) or [])),
                  max_chars=max_chars,
                  per_client_per_minute=t.int("per_client_per_minute", 2, lo=1, hi=600),
                  total_per_minute=t.int("total_per_minute", 30, lo=1, hi=6000),
                  offer=offer, choices=choices)
        t.check_unknown()
        return out

    def to_dict(self) -> dict:
        """JSON-able (the page's server gets it through its pipe; the transcript may keep it)."""
        d = asdict(self)
        d["blocklist"] = sorted(self.blocklist)
        d["choices"] = list(self.choices)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> AudienceSettings:
        """The inverse of to_dict (the page's server rebuilds the settings in its process)."""
        return cls(**{**d, "blocklist": frozenset(d.get("blocklist", ())), "choices": tuple(d.get("choices", ()))})


def refusal(word: object, max_chars: int, blocked: frozenset[str] | set[str] = frozenset(),
            choices: tuple[str, ...] = ()) -> str | None:
    """Why this word is not taken, in one short line (None: it is taken, as `normal(word)`)."""
    if not isinstance(word, str):
        return "word: a text is expected"
    w = word.strip()
    if not w:
        return "word: empty; send one word"
    if len(w) > max_chars:
        return f"word: at most {max_chars} letters"
    if not _WORD.fullmatch(w):
        return "word: one word of letters only (no spaces, digits or signs)"
    if w.lower() in blocked:
        return "word: not this one, sorry; try another"
    if choices and w.lower() not in choices:
        return "word: pick one of the offered words"
    return None


def normal(word: str) -> str:
    """The word as the show keeps it (stripped, lower-case)."""
    return word.strip().lower()


class RateLimit:
    """At most `per_client` words per address and `total` words in all per sliding minute."""

    def __init__(self, per_client: int, total: int, window: float = WINDOW_S, max_clients: int = 4096) -> None:
        self.per_client, self.total, self.window, self.max_clients = per_client, total, window, max_clients
        self._all: deque[float] = deque()
        self._by: dict[str, deque[float]] = {}

    def _trim(self, q: deque[float], now: float) -> None:
        while q and now - q[0] >= self.window:
            q.popleft()

    def take(self, client: str, now: float) -> str | None:
        """Count one word from `client` at `now`; a refusal line when over a limit (not counted)."""
        self._trim(self._all, now)
        mine = self._by.get(client)
        if mine is not None:
            self._trim(mine, now)
        if mine is not None and len(mine) >= self.per_client:
            return f"slow down: {self.per_client} word(s) a minute from each phone; try again in {self._wait(mine, now)} s"
        if len(self._all) >= self.total:
            return f"many words already: try again in {self._wait(self._all, now)} s"
        if mine is None:
            if len(self._by) >= self.max_clients:  # a flood of addresses: forget the quiet ones
                self._by = {k: q for k, q in self._by.items() if q and now - q[-1] < self.window}
            mine = self._by.setdefault(client, deque())
        mine.append(now)
        self._all.append(now)
        return None

    def _wait(self, q: deque[float], now: float) -> int:
        return max(1, int(self.window - (now - q[0]) + 0.999))
