"""What the engine asks of the world (the Outbox and its actions) and the inputs it gets besides
commands and worker messages (speech, worker restarts).

The runtime routes each action to its owner by type; the simulator and the tests read them
directly. Everything the engine learns arrives as one of these messages in `Engine.step`'s inbox:
no driver calls into the engine by a side door.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Speak:
    poem: int
    line: int
    text: str
    settings: Any
    temperature: float
    stanza: bool = False  # a blank line comes before it: the voice pauses as between stanzas


@dataclass(frozen=True, slots=True)
class Prepare:
    """A line the generator has finished writing, before the stage reveals it: the voice may
    synthesise it now, so it sounds as soon as its Speak comes (in a scene that speaks lines)."""

    line: int
    text: str
    settings: Any
    temperature: float


@dataclass(frozen=True, slots=True)
class Sonify:
    text: str
    p: float
    temperature: float
    settings: Any
    at: float


@dataclass(frozen=True, slots=True)
class SoundCtl:
    op: str  # volume | panic | blackout | resume | cancel
    value: float = 0.0


@dataclass(frozen=True, slots=True)
class VoiceCtl:
    """Change the voice live: one setting of the sound system's voice ("voice", "length_scale",
    "variation"); a None value gives the scenes' own back."""

    key: str
    value: Any = None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """From the sound system: an utterance is scheduled in the mix at [start, end); `words` holds
    (stage word index in the line, start, end) in engine seconds, `engine` what spoke it and
    `voice` the settings it was spoken with."""

    poem: int
    line: int
    start: float
    end: float
    words: tuple = ()
    engine: str | None = None
    voice: dict | None = None


@dataclass(frozen=True, slots=True)
class Keep:
    """Ask the transcript owner to append a poem to harvest.txt."""

    poem: int
    text: str
    footer: str
    # the keep command's answer: the transcript owner calls it once the line is on disk (or failed)
    reply: Callable[[bool, str], None] | None = field(default=None, compare=False, repr=False)


@dataclass
class Outbox:
    events: list[dict] = field(default_factory=list)
    worker: list = field(default_factory=list)
    sound: list = field(default_factory=list)
    files: list = field(default_factory=list)
    # (reply, ok, detail): answers to commands, called by the router (not on the engine's step)
    replies: list = field(default_factory=list)
    # a poem on stage waits for tokens the worker owes it (the runtime's stall watchdog reads it)
    awaiting_tokens: bool = False

    def answer(self) -> None:
        """Call the reply closures (the router does, after the step; a failing one is logged)."""
        for reply, ok, detail in self.replies:
            try:
                reply(ok, detail)
            except Exception:
                logging.getLogger("lectern.replies").exception("reply failed")
        self.replies = []


@dataclass(frozen=True, slots=True)
class SpeechState:
    """From the sound system, once a frame while it runs: is a line still being spoken, and how
    many wait (the engine compares it with the scene's voice `queue` under `when_behind = "hold"`)."""

    speaking: bool
    backlog: int = 0  # utterances waiting to be spoken


@dataclass(frozen=True, slots=True)
class WorkerRestarted:
    """From the runtime's watchdog: the generator worker was replaced and knows no request, so the
    poems being written start again (the unrevealed tokens are lost, nothing else)."""

    why: str = "died"


@dataclass(frozen=True, slots=True)
class Reload:
    """From the file watcher's thread: a setlist read and checked again off the frame loop.

    setlist is the new version (show.config.Setlist), or None when a file was refused; error is
    then its one line (file, key, value, what is allowed). file/sha256: the file whose change (or
    whose `/lectern/reload`) caused it and the sha256 of the bytes that were read; files: every
    file of the setlist read this time with its sha256. The engine takes it at the next poem or
    cue boundary (engine/reload.py) and answers `reply`."""

    setlist: Any
    error: str = ""
    file: str = ""
    sha256: str = ""
    files: tuple[tuple[str, str], ...] = ()
    source: str = "watch"  # "watch" (a file changed), or the source of the /lectern/reload command
    reply: Callable[[bool, str], None] | None = field(default=None, compare=False, repr=False)
