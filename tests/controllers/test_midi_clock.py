"""MIDI clock parsing at exact times: 24 pulses a quarter note -> BPM and beat, Start/Stop/Continue."""

from __future__ import annotations

import pytest

from performance.controllers.midi_clock import CLOCK, CONTINUE, START, STOP, MidiClock
from performance.protocol.tempo import TempoState


def pulses(clock: MidiClock, bpm: float, n: int, t0: float) -> float:
    dt = 60 / bpm / 24
    for k in range(n):
        clock.feed(CLOCK, t0 + k * dt)
    return t0 + n * dt


def test_24_ppqn_at_120_then_90_bpm():
    sent: list[TempoState] = []
    c = MidiClock(sent.append, engine_time=lambda t: t - 100.0)  # monotonic 100 s = engine 0
    c.feed(START, 100.0)
    assert sent == []  # no tempo yet: nothing to say
    t = pulses(c, 120, 48, 100.0)
    assert c.bpm == pytest.approx(120.0)
    last = sent[-1]
    assert last.playing is True and last.bpm == pytest.approx(120.0)
    # the first pulse is beat 0 at engine 0; the pulse sent last is beat (pulse - 1) / 24
    assert last.beat_at(1.0) == pytest.approx(2.0)  # two beats a second
    pulses(c, 90, 48, t)
    assert c.bpm == pytest.approx(90.0)
    assert sent[-1].time_of(sent[-1].beat + 1) - sent[-1].at == pytest.approx(60 / 90)
    assert sent[-1].beat == pytest.approx(sent[-1].beat_at(sent[-1].at))


def test_stop_freezes_the_beat_and_continue_goes_on():
    sent: list[TempoState] = []
    c = MidiClock(sent.append)
    c.feed(START, 0.0)
    t = pulses(c, 120, 24, 0.0)
    c.feed(STOP, t)
    assert sent[-1].playing is False and sent[-1].beat == pytest.approx(23 / 24)
    t = pulses(c, 120, 24, t)  # the clock keeps running while stopped: the position does not
    assert c.pulses == 24
    c.feed(CONTINUE, t)
    assert sent[-1].playing is True and sent[-1].beat == pytest.approx(1.0)


def test_a_gap_or_a_glitch_is_not_a_tempo():
    sent: list[TempoState] = []
    c = MidiClock(sent.append)
    t = pulses(c, 120, 30, 0.0)  # free running: no Start heard
    assert sent[-1].playing is None and c.bpm == pytest.approx(120)
    t = pulses(c, 100, 2, t + 5.0)  # five seconds of silence, then two pulses: not yet measured again
    assert c.bpm == pytest.approx(120)
    pulses(c, 100, 30, t)
    assert c.bpm == pytest.approx(100, rel=1e-3)
