"""Tempo shared with musicians: what a clock adapter (Ableton Link, MIDI clock) tells the engine.

A clock adapter runs on its own thread and puts these on the engine's inbox. Times are engine
seconds (the session clock), so the engine converts beats to times with no clock of its own and a
fake-clock test feeds the same messages at exact times.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TempoState:
    """The shared timeline as heard at engine time `at`: beat `beat` falls at `at`, beats follow at
    `bpm` per minute. playing: the transport (None when the source does not say: free running).
    peers: other Link peers (MIDI clock: 1). source: "link" | "midi"."""

    source: str
    bpm: float
    beat: float
    at: float
    playing: bool | None = None
    peers: int = 1
    quantum: float = 4.0

    def beat_at(self, t: float) -> float:
        """The beat position at engine time t on this timeline."""
        return self.beat + (t - self.at) * self.bpm / 60.0

    def time_of(self, beat: float) -> float:
        """The engine time at which beat position `beat` falls on this timeline."""
        return self.at + (beat - self.beat) * 60.0 / self.bpm


@dataclass(frozen=True, slots=True)
class TempoGone:
    """The source went away (the last Link peer left, the clock stopped arriving): why, in words."""

    source: str
    reason: str
