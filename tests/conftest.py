"""Shared test set-up: headless SDL, no audio device, a deterministic tiny generator."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from performance.textgen.base import SequentialBatch, Token  # noqa: E402

WORDS = "the sea is a grey mirror of old light and the wind walks over it slowly".split()


class ScriptStream:
    """A seeded stream of words and line breaks: the test stand-in for a model's text."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.count = 0

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        self.count += 1
        if self.count % 6 == 0:
            return Token("\n", 0.5, temperature)
        word = self.rng.choice(WORDS)
        return Token(("" if self.count % 6 == 1 else " ") + word, 0.25, temperature)


class ScriptModel:
    """Implements the Generator protocol with ScriptStream."""

    kind = "markov"
    word_tokens = True
    card: dict = {}

    def __init__(self, name: str) -> None:
        self.name = name

    def start(self, seed: int, prompt: str = "") -> ScriptStream:
        return ScriptStream(seed)

    def start_batch(self, seeds, prompts=None):
        return SequentialBatch([ScriptStream(s) for s in seeds])


def script_loader(name: str) -> ScriptModel:
    return ScriptModel(name)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_guess_budget(monkeypatch):
    """Every test starts with the process-wide passcode budget unspent (it is shared on purpose)."""
    from performance.controllers import auth

    monkeypatch.setattr(auth, "_SHARED_BUDGET", auth.GuessBudget())
    monkeypatch.setattr(auth, "_SHARED_LOG", auth.GuessLog())
