"""The engine's own state records: a poem being written and shown, and a column of the stage.

Plain mutable dataclasses owned by the frame thread (through the Engine); nothing outside
performance.engine reads them: state leaves as events and as the Snapshot.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from performance.textgen.base import LETTER, WORD_CHAR

_LETTER, _WORD_CHAR = LETTER, WORD_CHAR  # textgen/base.py's (the worker's co-writing reads the same)
_WORD_BOUNDARY = re.compile(r"[^\w'’-]$")  # text that ends here ends on a whole word
FIRST_POEM_PATIENCE_S = 1.5  # a poem shown whole: the first of a scene may keep the stage waiting this long
MIN_POEM_PATIENCE_S, MAX_POEM_PATIENCE_S = 0.3, 2.5  # later ones: the scene's hold, within these bounds
CUT_MIN_WORDS = 24  # a poem cut short before the longest patience has at least this many words


@dataclass
class _Poem:
    rid: int
    index: int  # poem index within the scene, this column
    model: str
    seed: int
    prompt: str
    n: int = 0  # session-wide number, given at poem_start
    started: bool = False
    granted: int = 0
    received: deque = field(default_factory=deque)  # (Token, arrival t)
    revealed: int = 0
    done: bool = False
    text: str = ""
    temps: list = field(default_factory=list)
    deadline: float = 0.0
    last_t: float = 0.0
    line: int = 0
    line_text: str = ""
    word_hold: list = field(default_factory=list)
    cut: bool = False  # ended early (a scene change, reseed, panic): its text is not whole
    cut_short: bool = False  # shown whole but cut at its last whole word: the model was too slow
    info: dict = field(default_factory=dict)  # from Opened: checkpoint label, loss curve, unit
    ahead: str = ""  # text received but not yet a whole line (the voice prepares whole lines)
    ahead_line: int = 0  # non-blank lines received so far
    stanza_next: bool = False  # a blank line was revealed: the next spoken line begins a stanza


@dataclass
class _Column:
    index: int
    model: str
    poem: _Poem | None = None
    phase: str = "poem"  # poem | hold | pause | done
    until: float = 0.0
    poems_done: int = 0
    start_at: float = 0.0  # when the current poem may start revealing
    last_rid: int | None = None
    shown: _Poem | None = None  # the poem whose text is on screen (the last with a token revealed)
    ahead: deque = field(default_factory=deque)  # poems opened early, written while this one shows
