"""The generator worker's vocabulary: requests from the engine, answers from the worker.

Plain frozen data, so the engine, the worker, the simulator and the benches speak one language
without importing each other. Field types from textgen (LengthRule, Token, XraySpec, TrainSpec)
are named in comments: this layer imports nothing of Lectern's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FALLBACK_MODEL = "default"  # what writes when a scene names no fallback and its model fails


# ---- messages to the worker -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Open:
    id: int
    model: str
    seed: int
    prompt: str
    length: Any  # textgen.lengths.LengthRule: where the poem ends
    continue_from: int | None = None
    xray: object | None = None  # textgen.xray.XraySpec when the scene shows the x-ray, else None
    fallback: str = FALLBACK_MODEL  # written with when the model fails (a served model's server down)
    continuation: int = 0  # served models: tokens per request (0 = the card's)
    originality: float | None = 0.7  # the scene's originality key, for kinds with a guard (markov)
    cowrite: Any = None  # show.cowrite_settings.CowriteSettings: a co-writing scene's (None: not one)
    prefix: str | None = None  # pretrained kind: the poet written under (None: the card's)


@dataclass(frozen=True, slots=True)
class Grant:
    id: int
    temperatures: tuple[float, ...]
    override: bool = False
    top_k: int = 0
    top_p: float = 1.0


@dataclass(frozen=True, slots=True)
class Close:
    id: int


@dataclass(frozen=True, slots=True)
class Preload:
    model: str


@dataclass(frozen=True, slots=True)
class Train:
    """Start training on stage (textgen.live.TrainSpec), unless that folder's trainer already runs."""

    spec: object


@dataclass(frozen=True, slots=True)
class Neuron:
    """Watch another hidden unit in every open x-ray stream, from the next token on."""

    unit: int


@dataclass(frozen=True, slots=True)
class Force:
    """Co-writing: request `id` goes on from `text` (the poem so far, ending with the word a person
    chose) as request `new_id`: its stream is re-fed with that text, under the poem's seed."""

    id: int
    new_id: int
    text: str


@dataclass(frozen=True, slots=True)
class Prefix:
    """Pretrained kind: write every open stream's next line under this prefix (a poet; None: the card's)."""

    text: str | None


# ---- messages from the worker -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TokenOut:
    id: int
    token: Any  # textgen.base.Token


@dataclass(frozen=True, slots=True)
class Opened:
    """Sent only for x-ray streams and followed/vintage models: which checkpoint writes the poem
    (label, e.g. "learning · step 1200 · epoch 0.4 · val 1.92"), its validation-loss curve, the unit watched."""

    id: int
    checkpoint: str | None = None
    curve: tuple[tuple[float, float], ...] = ()
    unit: int | None = None


@dataclass(frozen=True, slots=True)
class Waiting:
    """A heartbeat while a followed run has no checkpoint yet (the trainer is starting): the
    runtime's stall watchdog sees the worker alive. The engine ignores it."""

    id: int
    detail: str


@dataclass(frozen=True, slots=True)
class Done:
    id: int
    capped: bool = False


@dataclass(frozen=True, slots=True)
class Failed:
    id: int | None
    model: str
    error: str
    fallback: str | None  # model used instead, if any


@dataclass(frozen=True, slots=True)
class Loaded:
    model: str
    kind: str
    seconds: float


@dataclass(frozen=True, slots=True)
class ServedState:
    """A served model's endpoint: up or down (with why), and its last streaming rate."""

    model: str
    up: bool
    detail: str
    tok_s: float


WorkerIn = Open | Grant | Close | Preload | Neuron | Train | Force | Prefix
WorkerOut = TokenOut | Done | Failed | Loaded | Opened | Waiting | ServedState
