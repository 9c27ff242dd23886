"""Speech on the real pieces: pyttsx3 and espeak-ng in the worker process, restarts, the queue policy."""

from __future__ import annotations

import os
import time
import wave

import numpy as np
import pytest
from conftest import ROOT  # noqa: F401  (puts the repository on sys.path)

from performance.show.clock import FakeClock
from performance.sound import SoundSystem, Utterance, VoiceSettings
from performance.sound.voice import SpeechWorker

RATE = 48000
LINE = "the grey sea walks slowly over old light"  # 8 words


def wait_for(pred, timeout=20.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.01)
    return False


def rms(a: np.ndarray) -> float:
    return float(np.sqrt((a.astype(np.float64) ** 2).mean())) if len(a) else 0.0


@pytest.mark.parametrize("tts", ["pyttsx3", "espeak-ng"])
def test_a_line_renders_to_speech_of_plausible_length(monkeypatch, tts):
    monkeypatch.setenv("LECTERN_TTS", tts)
    w = SpeechWorker(lambda *a: None, rate=RATE)
    w.start(thread=False)
    try:
        samples, engine = w.render({"text": LINE, "voice": "en", "rate": 160, "pitch": 45, "volume": 0.9})
        fast, _ = w.render({"text": LINE, "voice": "en", "rate": 320, "pitch": 45, "volume": 0.9})
    finally:
        w.close()
    assert engine == tts
    seconds = len(samples) / RATE
    assert 0.2 * 8 <= seconds <= 0.6 * 8, seconds
    assert rms(samples) > 0.03  # speech, not silence
    assert len(fast) < 0.7 * len(samples)  # the rate is honoured


def test_speech_lands_in_the_wav_where_its_event_says(tmp_path):
    clock = FakeClock()
    snd = SoundSystem(clock, audio_out=tmp_path / "a.wav", null_sink=True)
    snd.start()
    v = VoiceSettings(mode="line", line_pause=0.5)
    snd.speak(Utterance(1, 3, 0, "a quiet line", v, 0.5))
    snd.speak(Utterance(2, 3, 1, "and the next one", v, 0.5))
    events = []
    while len(events) < 2:  # the engine clock moves in 20 ms frames
        assert clock.now() < 20, "speech never started"
        clock.advance(0.02)
        snd.render_until(clock.now())
        events += snd.poll()
        time.sleep(0.002)
    a, b = events
    assert (a.id, a.poem, a.line, b.id, b.line) == (1, 3, 0, 2, 1)
    assert abs(b.start - (a.end + 0.5)) < 1e-3  # the line pause, exactly
    assert snd.speaking()
    clock.set(b.end + 0.4)
    snd.render_until(clock.now())
    assert not snd.speaking() and snd.speech_backlog() == 0
    end = clock.now()
    snd.close()
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert w.getnframes() == int(end * RATE)
        audio = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)[:, 0] / 32768
    for e in (a, b):
        assert rms(audio[int(e.start * RATE):int(e.end * RATE)]) > 0.02
    assert np.abs(audio[:int(a.start * RATE)]).max() < 1e-3  # nothing before the first line
    quiet = audio[int(a.end * RATE) + 2400:int(b.start * RATE)]  # the pause between lines
    assert len(quiet) > 0 and np.abs(quiet).max() < 0.01
    assert np.abs(audio[int(b.end * RATE) + 2400:]).max() < 1e-3


@pytest.mark.parametrize("how", ["kill", "hang"])
def test_a_killed_or_hung_worker_is_restarted_and_the_next_line_is_spoken(monkeypatch, how):
    w = SpeechWorker(lambda *a: None, rate=RATE, timeout_base=1.0)
    w.start(thread=False)
    job = {"text": "one more line", "voice": "en", "rate": 200, "pitch": 50, "volume": 1.0}
    try:
        if how == "kill":
            os.kill(w.pid, 9)
            w.proc.wait(5)
        else:
            monkeypatch.setenv("LECTERN_FAULTS", "speech_worker_hang")
        first_pid = w.pid
        t0 = time.monotonic()
        samples, _ = w.render(job)  # this very line is still spoken (retried on a fresh worker)
        took = time.monotonic() - t0
        monkeypatch.delenv("LECTERN_FAULTS", raising=False)
        nxt, _ = w.render(job | {"text": "and the next"})
    finally:
        w.close()
    assert w.restarts == 1 and w.pid != first_pid
    assert rms(samples) > 0.03 and rms(nxt) > 0.03
    if how == "hang":
        assert 1.0 <= took < 4.0  # waited for the timeout, not forever


def test_skip_keeps_the_queue_bounded_and_speaks_the_newest():
    clock = FakeClock()
    snd = SoundSystem(clock, null_sink=True)
    snd.start()
    v = VoiceSettings(mode="line", queue=2, when_behind="skip", line_pause=0.0)
    for i in range(12):  # a poem-flick scene: lines far faster than speech
        snd.speak(Utterance(i, 1, i, f"line number {i}", v, 0.7))
        assert snd.speech_backlog() <= 2 + 2  # waiting + one rendering + one lined up in the mix
    spoken = []
    while not spoken or spoken[-1] != 11:
        assert clock.now() < 60, spoken
        clock.advance(0.05)
        snd.render_until(clock.now())
        spoken += [e.id for e in snd.poll()]
        time.sleep(0.002)
    snd.close()
    assert len(spoken) <= 4 and spoken == sorted(spoken)
    assert snd.health()["speech_skipped"] >= 8


def test_hold_keeps_every_line_and_reports_the_backlog():
    clock = FakeClock()
    snd = SoundSystem(clock, null_sink=True)
    snd.start()
    v = VoiceSettings(mode="line", queue=2, when_behind="hold", line_pause=0.0)
    for i in range(5):
        snd.speak(Utterance(i, 1, i, f"word {i}", v, 0.7))
    assert snd.speech_backlog() == 5  # the engine holds the stage while this is above queue
    spoken = []
    while len(spoken) < 5:
        assert clock.now() < 60, spoken
        clock.advance(0.05)
        snd.render_until(clock.now())
        spoken += [e.id for e in snd.poll()]
        time.sleep(0.002)
    snd.close()
    assert spoken == [0, 1, 2, 3, 4]


def test_cancel_drops_waiting_lines_and_voice_off_speaks_nothing():
    clock = FakeClock()
    snd = SoundSystem(clock, null_sink=True)
    snd.start()
    v = VoiceSettings(mode="line", queue=10, when_behind="hold")
    snd.speak(Utterance(0, 1, 0, "nothing here", VoiceSettings(mode="off"), 0.5))
    assert snd.speech_backlog() == 0
    for i in range(1, 6):
        snd.speak(Utterance(i, 1, i, f"line {i}", v, 0.5))
    assert wait_for(lambda: snd.mixer.voice_waiting() == 1)  # one rendered, lined up
    snd.cancel_speech()
    spoken = []
    for _ in range(200):
        clock.advance(0.05)
        snd.render_until(clock.now())
        spoken += [e.id for e in snd.poll()]
        time.sleep(0.002)
    snd.close()
    assert spoken == []  # line 1 was lined up but had not started
    assert snd.speech_backlog() == 0
