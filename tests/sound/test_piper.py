"""The Piper voice on the real pieces: the shipped voice in the speech worker process, its words'
times against the decoded audio, the same audio twice, espeak-ng taking over, the voice chosen by OSC."""

from __future__ import annotations

import logging
import queue
import time
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT  # noqa: F401  (puts the repository on sys.path)
from osc_client import Client, msg

from performance.controllers.osc import OscServer
from performance.engine.commands import HANDLERS
from performance.protocol.actions import Outbox, VoiceCtl
from performance.show.clock import FakeClock
from performance.show.sound_settings import PIPER_DEFAULT
from performance.sound import SoundSystem, Utterance, VoiceSettings
from performance.sound.voice import SpeechWorker

RATE = 48000
LINE = "the grey sea walks slowly over 12 old lights"  # 9 stage words, 9 spoken
JOB = {"text": LINE, "voice": PIPER_DEFAULT, "rate": 160, "pitch": 45, "volume": 0.9, "length_scale": 1.0,
       "variation": 0.667}


@pytest.fixture(scope="module")
def worker():
    w = SpeechWorker(lambda *a: None, rate=RATE)
    w.preload = PIPER_DEFAULT
    w.start(thread=False)
    yield w
    w.close()


def band_share(a: np.ndarray, lo: float = 100.0, hi: float = 4000.0) -> float:
    spec = np.abs(np.fft.rfft(a)) ** 2
    f = np.fft.rfftfreq(len(a), 1 / RATE)
    return float(spec[(f >= lo) & (f <= hi)].sum() / spec.sum())


def rms(a: np.ndarray) -> float:
    return float(np.sqrt((a.astype(np.float64) ** 2).mean())) if len(a) else 0.0


def test_the_shipped_voice_speaks_a_line_like_speech(worker):
    r = worker.render_timed(JOB)
    assert r.engine == "piper"
    seconds = len(r.samples) / RATE
    assert 0.18 * 9 <= seconds <= 0.7 * 9, seconds  # a plausible length for nine words
    assert rms(r.samples) > 0.05 and band_share(r.samples) > 0.8  # speech: loud, in the speech band
    assert band_share(r.samples, 11500, 24000) < 1e-4  # resampled to 48 kHz without mirror images
    again = worker.render_timed(JOB)
    assert np.array_equal(r.samples, again.samples) and r.words == again.words  # the same audio, every time


def test_word_intervals_are_monotonic_cover_the_audio_and_hold_sound(worker):
    r = worker.render_timed(JOB)
    seconds = len(r.samples) / RATE
    assert [k for k, _, _ in r.words] == list(range(9))
    assert all(a < b for _, a, b in r.words)
    assert all(r.words[i][2] <= r.words[i + 1][1] + 1e-6 for i in range(8))
    assert r.words[0][1] < 0.3 and r.words[-1][2] > seconds - 0.4 and r.words[-1][2] <= seconds + 1e-6
    loud = rms(r.samples)
    for k, a, b in r.words:  # every word's interval has voice in it; the gaps around the line do not
        assert rms(r.samples[int(a * RATE):int(b * RATE)]) > 0.3 * loud, (k, a, b)
    assert rms(r.samples[:int(0.02 * RATE)]) < 0.1 * loud


def test_length_scale_slows_the_reading(worker):
    slow = worker.render_timed(JOB | {"length_scale": 1.5})
    normal = worker.render_timed(JOB)
    assert len(slow.samples) > 1.3 * len(normal.samples)
    assert slow.words[-1][2] > 1.3 * normal.words[-1][2]


def test_a_broken_piper_falls_back_to_espeak_with_one_line(monkeypatch, caplog):
    monkeypatch.setenv("LECTERN_FAULTS", "piper_broken")
    w = SpeechWorker(lambda *a: None, rate=RATE)
    w.start(thread=False)
    try:
        with caplog.at_level(logging.ERROR, logger="lectern.voice"):
            first = w.render_timed(JOB)
            second = w.render_timed(JOB | {"text": "and another line"})
    finally:
        w.close()
    assert first.engine == second.engine == "espeak-ng"
    assert rms(first.samples) > 0.03 and len(first.words) == 9  # still spoken, its words still timed
    lines = [r.getMessage() for r in caplog.records if "piper" in r.getMessage()]
    assert len(lines) == 1 and "broken" in lines[0] and "espeak-ng reads instead" in lines[0]


def test_a_hung_synthesiser_is_killed_and_the_line_still_spoken(monkeypatch):
    monkeypatch.setenv("LECTERN_FAULTS", "speech_worker_hang")
    w = SpeechWorker(lambda *a: None, rate=RATE, timeout_base=1.0)
    w.start(thread=False)
    w._warm.add(PIPER_DEFAULT)  # no voice-loading allowance: the hang is found in a second
    try:
        r = w.render_timed(JOB)
    finally:
        w.close()
    assert w.restarts == 1 and r.engine == "espeak-ng" and rms(r.samples) > 0.03


def test_the_voice_is_chosen_over_osc_and_spoken_with(monkeypatch):
    srv = OscServer(queue.Queue(maxsize=64), host="127.0.0.1", port=0, scene_count=lambda: 1, clock=FakeClock())
    srv.start()
    try:
        c = Client(srv.port)
        c.send(msg("/lectern/voice/name", "espeak:en"))
        c.send(msg("/lectern/voice/rate", 1.4))
        cmds = []
        t0 = time.monotonic()
        while len(cmds) < 2 and time.monotonic() - t0 < 5:
            try:
                cmds.append(srv.inbox.get(timeout=0.1))
            except queue.Empty:
                pass
    finally:
        srv.stop()
    assert [c.name for c in cmds] == ["voice/name", "voice/rate"]

    class E:  # the engine's part: its handler turns the command into the sound system's action
        _out = Outbox()

    e = E()
    assert [HANDLERS[c.name](e, 0.0, c)[0] for c in cmds] == [True, True]
    assert e._out.sound == [VoiceCtl("voice", "espeak:en"), VoiceCtl("length_scale", 1.4)]
    snd = SoundSystem(FakeClock(), null_sink=True, speech=False)
    for a in e._out.sound:
        snd.set_voice(**{a.key: a.value})
    job = snd.job_for(Utterance(1, 1, 0, LINE, VoiceSettings(mode="line", voice=PIPER_DEFAULT), 0.5))
    assert job["voice"] == "espeak:en" and job["length_scale"] == 1.4
    snd.set_voice(voice=None)
    assert snd.job_for(Utterance(2, 1, 1, LINE, VoiceSettings(voice=PIPER_DEFAULT), 0.5))["voice"] == PIPER_DEFAULT
    bad = type(cmds[0])("/lectern/voice/name", ("festival:en",), source="osc")
    ok, detail = HANDLERS["voice/name"](e, 0.0, bad)
    assert not ok and "piper:NAME" in detail


def test_a_synthesiser_killed_mid_line_loses_no_line(worker):
    import os
    import signal
    import threading

    got = {}
    pid = worker.pid
    th = threading.Thread(target=lambda: got.update(r=worker.render_timed(JOB | {"text": ", ".join([LINE] * 4)})))
    th.start()
    time.sleep(0.05)  # the worker is synthesising the line now
    os.kill(pid, signal.SIGKILL)
    th.join(30)
    assert got["r"].engine == "espeak-ng" and rms(got["r"].samples) > 0.03  # the line is still spoken
    assert worker.pid != pid and worker.restarts >= 1
    assert worker.render_timed(JOB).engine == "piper"  # and the next one with Piper again


def test_a_line_prepared_ahead_sounds_from_its_synthesis_and_carries_its_words(tmp_path):
    clock = FakeClock()
    snd = SoundSystem(clock, audio_out=tmp_path / "a.wav", null_sink=True, preload_voice=PIPER_DEFAULT)
    snd.start()
    try:
        v = VoiceSettings(mode="line", voice=PIPER_DEFAULT)
        snd.prepare(0, LINE, v, 0.5)  # written, not yet revealed
        t0 = time.monotonic()
        while not snd._ready and time.monotonic() - t0 < 30:
            time.sleep(0.02)
        snd.speak(Utterance(1, 4, 0, LINE, v, 0.5))  # now it is due
        events = []
        while not events and clock.now() < 5:
            clock.advance(0.02)
            snd.render_until(clock.now())
            events = snd.poll()
            time.sleep(0.005)
    finally:
        snd.close()
    (e,) = events
    assert snd.ahead_hits == 1 and e.start < 0.1 and e.engine == "piper"  # no synthesis between due and sound
    assert [k for k, _, _ in e.words] == list(range(9)) and e.start <= e.words[0][1] < e.words[-1][2] <= e.end
    assert e.voice["voice"] == PIPER_DEFAULT and "text" not in e.voice


def test_line_ends_and_stanza_breaks_become_pauses_of_set_lengths(tmp_path):
    clock = FakeClock()
    snd = SoundSystem(clock, null_sink=True)
    snd.start()
    v = VoiceSettings(mode="line", voice="espeak:en", line_pause=0.4, stanza_pause=1.0, when_behind="hold")
    lines = [("the sea is grey", False), ("and the wind is cold.", False), ("a new stanza begins", True),
             ("and it ends", False)]
    for i, (text, stanza) in enumerate(lines):
        snd.speak(Utterance(i + 1, 1, i, text, v, 0.5, stanza))
    events = []
    try:
        while len(events) < 4 and clock.now() < 30:
            clock.advance(0.02)
            snd.render_until(clock.now())
            events += snd.poll()
            time.sleep(0.002)
    finally:
        snd.close()
    gaps = [round(b.start - a.end, 3) for a, b in zip(events, events[1:], strict=False)]
    # a bare line end: the line pause; a full stop before a stanza: the stanza pause, 1.5 times
    assert gaps == [pytest.approx(0.4, abs=2e-3), pytest.approx(1.5, abs=2e-3), pytest.approx(0.4, abs=2e-3)]


def test_check_says_in_one_line_when_a_piper_voice_path_is_not_there(tmp_path, capsys):
    from performance.check import run_check

    good_dir = tmp_path / "voice"
    good_dir.mkdir()
    (good_dir / "v.onnx").write_bytes(b"\0")
    (good_dir / "v.onnx.json").write_text("{}")
    for voice, ok in ((f"piper:{tmp_path / 'nowhere'}", False), (f"piper:{good_dir}", True),
                      ("piper:en_US-joe-medium", True)):
        scene = tmp_path / "s.toml"
        scene.write_text(f'model = "markov"\n[voice]\nmode = "line"\nvoice = "{voice}"\n')
        rc = run_check(SimpleNamespace(paths=[scene], probe=False))
        out = capsys.readouterr().out.strip().splitlines()
        assert (rc == 0) is ok, out
        if not ok:
            assert len(out) == 1 and "voice.voice" in out[0] and "does not exist" in out[0], out
