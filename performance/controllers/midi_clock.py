"""MIDI clock in (24 pulses a quarter note, Start / Continue / Stop): the tempo of a drum machine or a
DAW without Link, as the same `TempoState` messages the Link peer sends (engine/tempo.py).

The MIDI thread feeds each real-time byte with the moment it was read; the tempo is the mean pulse
interval over the last beat (one late read moves it little), the beat is the count of pulses
since Start. A TempoState goes out every SEND_EVERY pulses and at each Start, Continue and Stop;
when pulses stop coming the engine hears nothing and falls back to seconds after its timeout.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from performance.protocol.tempo import TempoState

PPQN = 24
CLOCK, START, CONTINUE, STOP = 0xF8, 0xFA, 0xFB, 0xFC
REALTIME = frozenset({CLOCK, START, CONTINUE, STOP})
SEND_EVERY = 6  # pulses between two TempoStates: a sixteenth note (8 a second at 120 BPM)
MIN_BPM, MAX_BPM = 20.0, 400.0  # a pulse interval outside these is a gap or a glitch, not a tempo


class MidiClock:
    """Turns MIDI real-time bytes into TempoStates. send: puts one on the inbox. engine_time: a
    monotonic read time -> engine seconds. Not thread-safe: the MIDI thread owns it."""

    def __init__(self, send: Callable[[Any], None], engine_time: Callable[[float], float] = lambda t: t) -> None:
        self.send, self.engine_time = send, engine_time
        self.pulses = 0  # since Start: the beat is pulses / PPQN
        self.playing: bool | None = None  # None: pulses with no Start heard (a free-running clock)
        self._times: deque[float] = deque(maxlen=PPQN + 1)
        self.bpm: float | None = None

    def feed(self, status: int, t: float) -> None:
        """One real-time byte (CLOCK, START, CONTINUE, STOP) read at monotonic time t."""
        if status == START:
            self.pulses, self.playing = 0, True
            self._send(t, 0.0)  # the pulse that follows marks beat 0: near enough this moment
        elif status == CONTINUE:
            self.playing = True
            self._send(t, self.pulses / PPQN)
        elif status == STOP:
            self.playing = False
            self._send(t, max(0, self.pulses - 1) / PPQN)
        elif status == CLOCK:
            self._pulse(t)

    def _pulse(self, t: float) -> None:
        if self._times and not 60 / (MAX_BPM * PPQN) <= t - self._times[-1] <= 60 / (MIN_BPM * PPQN):
            self._times.clear()  # a gap (the clock stopped for a while) or a glitch: measure afresh
        self._times.append(t)
        if self.playing is not False:
            self.pulses += 1
        if len(self._times) >= 3:
            self.bpm = 60.0 / (PPQN * (self._times[-1] - self._times[0]) / (len(self._times) - 1))
            if self.pulses % SEND_EVERY == 1 or len(self._times) == 3:
                self._send(t, (self.pulses - 1) / PPQN)  # the first pulse after Start is beat 0

    def _send(self, t: float, beat: float) -> None:
        if self.bpm is not None:
            self.send(TempoState("midi", self.bpm, beat, self.engine_time(t), playing=self.playing))


def engine_time_from(clock: Any) -> Callable[[float], float]:
    """A monotonic read time -> engine seconds on the session's clock (the moment is in the past)."""
    if clock is None:
        return lambda t: t
    scale = getattr(clock, "time_scale", 1.0)
    return lambda t: clock.now() - (time.monotonic() - t) * scale
