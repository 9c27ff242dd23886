"""Voice and sonification on the real pieces: espeak-ng via pyttsx3, the worker process, the mix."""

from __future__ import annotations

import os
import time
import wave

import numpy as np
import pytest
from conftest import ROOT  # noqa: F401

from performance.show.clock import FakeClock
from performance.sound import SonifySettings, SoundSystem, Utterance, VoiceSettings
from performance.sound.audio import Mixer
from performance.sound.sonify import Sonifier, frequency

RATE = 48000


def read(path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 2
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)[:, 0].astype(np.float32) / 32768


def wait_for(pred, timeout=20.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_speech_renders_a_line_to_plausible_audio(tmp_path):
    clock = FakeClock()
    snd = SoundSystem(clock, audio_out=tmp_path / "a.wav", null_sink=True)
    snd.output.start = lambda: None  # the test drives rendering by hand on the fake clock
    snd.start()
    line = "the grey sea walks slowly over old light"
    snd.speak(Utterance(1, 1, 0, line, VoiceSettings(mode="line"), 0.7))
    assert wait_for(lambda: not snd._events.empty())
    ev = snd.poll()[0]
    dur = ev.end - ev.start
    assert 0.2 * 8 <= dur <= 0.8 * 8, dur  # 8 words
    clock.set(ev.end + 0.5)
    snd.output.render_until(clock.now())
    snd.close()
    audio = read(tmp_path / "a.wav")
    speech = audio[int(ev.start * RATE):int(ev.end * RATE)]
    assert np.sqrt((speech ** 2).mean()) > 0.02
    assert np.abs(audio[int((ev.end + 0.1) * RATE):]).max() < 0.01  # silence after
    assert snd.health()["speech_engine"] in ("pyttsx3", "espeak-ng")


@pytest.mark.parametrize("how", ["kill", "hang"])
def test_killed_or_hung_worker_is_restarted_and_the_next_line_is_spoken(tmp_path, monkeypatch, how):
    clock = FakeClock()
    snd = SoundSystem(clock, null_sink=True)
    snd.output.start = lambda: None
    snd.worker.timeout_base = 1.5
    snd.start()
    if how == "hang":
        monkeypatch.setenv("LECTERN_FAULTS", "speech_worker_hang")
    else:
        os.kill(snd.worker.pid, 9)
    snd.speak(Utterance(1, 1, 0, "one more line", VoiceSettings(mode="line"), 0.7))
    assert wait_for(lambda: not snd._events.empty(), 30)
    monkeypatch.delenv("LECTERN_FAULTS", raising=False)
    snd.speak(Utterance(2, 1, 1, "and the next", VoiceSettings(mode="line"), 0.7))
    assert wait_for(lambda: snd._events.qsize() >= 2, 30)
    events = snd.poll()
    assert [e.id for e in events] == [1, 2]
    assert snd.worker.restarts == 1
    snd.close()


def test_skip_policy_bounds_the_backlog():
    clock = FakeClock()
    snd = SoundSystem(clock, null_sink=True)
    snd.output.start = lambda: None
    snd.start()
    v = VoiceSettings(mode="line", queue=2, when_behind="skip")
    for i in range(12):
        snd.speak(Utterance(i, 1, i, f"line number {i}", v, 0.7))
        assert snd._waiting <= 3
    wait_for(lambda: snd._waiting == 0, 30)
    spoken = [e.id for e in snd.poll()]
    assert len(spoken) < 12 and spoken[-1] == 11  # the newest is always spoken
    snd.close()


def test_sonified_tokens_have_the_expected_pitches():
    settings = SonifySettings(enabled=True, mapping="letters", scale="pentatonic", base_hz=220.0, length=0.25)
    mixer = Mixer(RATE)
    son = Sonifier(RATE)
    expected = []
    for k, word in enumerate(["a", "c", "e", "h"]):
        grain, f = son.grain(word, 0.5, 0.2, settings)
        mixer.schedule(int(k * 0.5 * RATE), grain)
        expected.append(f)
    audio = np.concatenate([mixer.render(1024).copy() for _ in range(int(2.6 * RATE / 1024) + 1)])
    for k, f in enumerate(expected):
        seg = audio[int(k * 0.5 * RATE):int(k * 0.5 * RATE) + int(0.2 * RATE)]
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
        peak = np.fft.rfftfreq(len(seg), 1 / RATE)[np.argmax(spec)]
        assert abs(peak - f) < 8, (k, peak, f)
    assert expected == sorted(expected) and len(set(expected)) == 4
    assert frequency(settings, 0, 2.0) > frequency(settings, 0, 0.2)  # hotter = higher register
    # silence between grains (envelopes decay, nothing sounds when nothing is revealed)
    assert np.abs(audio[int(1.75 * RATE) + int(0.3 * RATE):]).max() < 1e-3


def test_volume_and_panic_fade_act_on_the_mix():
    mixer = Mixer(RATE)
    tone = np.full(RATE * 4, 0.5, np.float32)
    mixer.schedule(0, tone)
    mixer.volume = 0.5
    assert abs(mixer.render(1024)[100] - 0.25) < 1e-6
    mixer.fade_to(0.0, 1.0)
    blocks = [mixer.render(1024).copy() for _ in range(int(1.2 * RATE / 1024))]
    assert blocks[0][0] > 0.2 and abs(blocks[-1]).max() == 0.0
    mid = blocks[len(blocks) // 2]
    assert 0.05 < mid.mean() < 0.2


def test_device_lost_falls_back_to_null_sink_and_returns(monkeypatch):
    from performance.sound import audio

    monkeypatch.setattr(audio, "RETRY_S", 0.2)
    clock = FakeClock()
    monkeypatch.setenv("LECTERN_FAULTS", "audio_device_lost")
    snd = SoundSystem(clock, null_sink=False, speech=False)
    snd.start()
    assert snd.health()["device"] == "null"
    clock.advance(1.0)
    time.sleep(0.3)
    assert snd.mixer.position >= RATE  # the null sink kept the mix moving on the engine clock
    monkeypatch.delenv("LECTERN_FAULTS")
    time.sleep(0.6)  # it retried the device; on a machine without one it stays on the null sink
    assert snd.output._last_try > 0
    snd.close()
