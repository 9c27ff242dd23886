"""The one interface every generator speaks, neural or classic.

A `Generator` is a loaded model. `start(seed, prompt)` opens a `Stream`; each `next(temperature)`
returns one `Token` with the probability the model gave it, under a temperature that may change on
every call. `start_batch` opens several independent streams stepped together (each with its own
seeded random generator, so a stream's text depends only on its seed and temperatures, never on
what it was batched with).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class ModelFileError(Exception):
    """A model folder or file cannot be used. The message names the file and what is wrong."""


class ServedError(Exception):
    """A served model's endpoint failed (refused, timed out, HTTP error, cut or malformed stream,
    unknown model id). The message is one line naming the endpoint and what went wrong."""


@dataclass(frozen=True, slots=True)
class Token:
    """One generated token.

    text: the token's text exactly as it joins the poem ("w", " the", "\\n", ",").
    p: the probability the model gave this token under the temperature used (0 < p <= 1).
    temperature: the temperature it was sampled under.
    top: x-ray scenes and served models (None otherwise): the k likeliest tokens as (text, p) pairs,
        most likely first, under the same temperature (untempered at temperature 0), before top-k/top-p
        truncation; served models give them from the server's top logprobs.
    unit: x-ray only (None otherwise): the activation of the watched hidden unit in the state
        that predicted this token.
    """

    text: str
    p: float
    temperature: float
    top: tuple[tuple[str, float], ...] | None = None
    unit: float | None = None


AUTO = -1  # XraySpec.neuron: the unit that varied most over the last poem


@dataclass(frozen=True, slots=True)
class XraySpec:
    """What an x-ray scene asks the worker for: top-k size, the watched unit (None = none,
    AUTO = auto) and, for transformers, the block whose residual stream is watched (-1 = last)."""

    k: int = 5
    neuron: int | None = None
    layer: int = -1


@runtime_checkable
class Stream(Protocol):
    """One seeded stream of tokens."""

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        """Sample the next token. temperature 0 means argmax."""
        ...


@runtime_checkable
class BatchStream(Protocol):
    """Several independent streams stepped together."""

    def next(self, temperatures: list[float], top_k: int = 0, top_p: float = 1.0) -> list[Token]:
        """Sample one token for every stream; temperatures[i] applies to stream i."""
        ...


class Generator(Protocol):
    """A loaded model of any kind."""

    name: str  # folder name, e.g. "default"
    kind: str  # one of the contract's KIND values
    card: dict  # the model.json card as loaded

    def start(self, seed: int, prompt: str = "") -> Stream:
        """Open a stream. Prompt characters/words outside the vocabulary are mapped or dropped
        (with one warning through the `warnings` module), never an error."""
        ...

    def start_batch(self, seeds: list[int], prompts: list[str] | None = None) -> BatchStream:
        """Open len(seeds) independent streams stepped together."""
        ...


class SequentialBatch:
    """A BatchStream made of plain streams, for kinds with nothing to gain from batching."""

    def __init__(self, streams: list[Stream]) -> None:
        self._streams = streams

    def next(self, temperatures: list[float], top_k: int = 0, top_p: float = 1.0) -> list[Token]:
        return [s.next(t, top_k, top_p) for s, t in zip(self._streams, temperatures, strict=True)]


LETTER = re.compile(r"[^\W\d_]")
WORD_CHAR = re.compile(r"[\w'’-]")  # inside a word: letters, digits, apostrophes, hyphens


def starts_word(prev: str, text: str) -> bool:
    """Does `text`, following `prev`, begin a new word (its first letter follows a non-word char)?
    The engine offers co-writing choices there and the worker re-feeds from there: one rule."""
    m = WORD_CHAR.search(text)
    if m is None or not LETTER.match(text[m.start()]):
        return False
    before = text[:m.start()] or prev[-1:] or " "
    return not WORD_CHAR.match(before[-1])
