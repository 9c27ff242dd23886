"""The mix on the engine clock: sonified pitches by FFT, the WAV tap, volume, panic, blackout, and
a real PortAudio device (ALSA's null plugin) that is lost and comes back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import wave

import numpy as np
import pytest
from conftest import ROOT

from performance.show.clock import FakeClock
from performance.sound import SonifySettings, SoundSystem
from performance.sound.audio import Mixer
from performance.sound.sonify import Sonifier

RATE = 48000
TONES = SonifySettings(enabled=True, mapping="letters", scale="pentatonic", base_hz=220.0, length=0.25)


def read_wav(path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 2
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)[:, 0].astype(np.float32) / 32768


def peak_hz(seg: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    return float(np.fft.rfftfreq(len(seg), 1 / RATE)[np.argmax(spec)])


def sonified_session(tmp_path, tokens, **kw):
    """Tokens (text, p, temperature, at) sonified on a fake clock; returns (wav samples, end time)."""
    clock = FakeClock()
    snd = SoundSystem(clock, audio_out=tmp_path / "s.wav", null_sink=True, speech=False, **kw)
    snd.start()
    for text, p, temp, at in tokens:
        clock.set(at)
        snd.sonify(text, p, temp, TONES, at)
        snd.render_until(at)
    end = tokens[-1][3] + 1.0
    clock.set(end)
    snd.close()
    return read_wav(tmp_path / "s.wav"), end


def test_a_known_token_stream_sounds_the_expected_pitches(tmp_path):
    # letters mapping, pentatonic on A3: a → degree 0, c → 2, e → 4, h → 7 (next octave, degree 2)
    words = ["a", "came", "evening", "hollow"]
    expected = [220.0, 220.0 * 2 ** (4 / 12), 220.0 * 2 ** (9 / 12), 440.0 * 2 ** (4 / 12)]
    tokens = [(w, 0.5, 0.2, 0.5 + 0.5 * k) for k, w in enumerate(words)]
    audio, end = sonified_session(tmp_path, tokens)
    assert len(audio) == int(end * RATE)  # the WAV is as long as the engine session
    for (_, _, _, at), f in zip(tokens, expected, strict=True):
        seg = audio[int(at * RATE):int((at + 0.2) * RATE)]
        assert abs(peak_hz(seg) - f) < 6, (at, peak_hz(seg), f)
    assert np.abs(audio[:int(0.5 * RATE)]).max() == 0.0  # silent before the first token
    assert np.abs(audio[int(2.3 * RATE):]).max() < 2e-3  # and after the last grain has decayed


def test_temperature_lifts_the_register_and_surprise_is_louder_and_brighter():
    son = Sonifier(RATE)
    cool, f_cool = son.grain("a", 0.5, 0.2, TONES)
    hot, f_hot = son.grain("a", 0.5, 1.2, TONES)
    assert f_hot == pytest.approx(f_cool * 2 ** (14 / 12))  # two levels up, a fifth each
    assert abs(peak_hz(hot[:int(0.2 * RATE)]) - f_hot) < 6
    likely, _ = son.grain("a", 0.9, 0.2, TONES)
    surprising, _ = son.grain("a", 1e-4, 0.2, TONES)
    assert np.abs(surprising).max() > 1.8 * np.abs(likely).max()

    def upper_energy(g: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(g[:9600])) ** 2
        return float(spec[int(1.5 * 220 * 9600 / RATE):].sum() / spec.sum())

    assert upper_energy(surprising) > 5 * upper_energy(likely)  # overtones: brighter
    assert son.grain("a", 0.5, 0.2, TONES)[0] is cool  # cached: sounding a token costs a lookup
    # no clicks: every grain starts and ends at zero
    for g in (cool, hot, likely, surprising):
        assert abs(g[0]) < 1e-3 and abs(g[-1]) < 1e-3


def test_volume_scales_the_output(tmp_path):
    loud, _ = sonified_session(tmp_path, [("a", 0.5, 0.2, 0.5)])
    clock = FakeClock()
    snd = SoundSystem(clock, audio_out=tmp_path / "q.wav", null_sink=True, speech=False)
    snd.start()
    snd.set_volume(0.25)
    snd.render_until(0.1)  # the volume glides in over one block, long before the token
    clock.set(0.5)
    snd.sonify("a", 0.5, 0.2, TONES, 0.5)
    clock.set(1.5)
    snd.close()
    quiet = read_wav(tmp_path / "q.wav")
    seg = slice(int(0.5 * RATE), int(0.7 * RATE))
    assert np.abs(quiet[seg]).max() == pytest.approx(0.25 * np.abs(loud[seg]).max(), rel=0.02)


def test_panic_fades_to_silence_within_fade_s_and_resume_brings_sound_back():
    clock = FakeClock()
    snd = SoundSystem(clock, null_sink=True, speech=False)
    tone = np.full(RATE * 5, 0.5, np.float32)
    snd.mixer.schedule(0, tone)
    snd.render_until(1.0)
    snd.panic(1.0)
    blocks = []
    while snd.mixer.position < int(2.5 * RATE):
        blocks.append(snd.mixer.render(1024).copy())
    faded = np.concatenate(blocks)  # from t = 1.0
    assert faded[0] > 0.49
    assert 0.2 < faded[int(0.5 * RATE)] < 0.3  # half way through a linear fade
    assert np.abs(faded[int(1.0 * RATE):]).max() == 0.0  # silent from fade_s on
    assert np.all(np.diff(faded[:int(1.0 * RATE)]) <= 1e-7)  # a smooth ramp down
    snd.mixer.schedule(snd.mixer.position, tone[:RATE])
    snd.resume()
    after = np.concatenate([snd.mixer.render(1024).copy() for _ in range(30)])
    assert after[-1] == pytest.approx(0.5, abs=1e-4)


def test_blackout_is_silent_within_a_block_and_drops_what_was_scheduled():
    mixer_clock = FakeClock()
    snd = SoundSystem(mixer_clock, null_sink=True, speech=False)
    snd.mixer.schedule(0, np.full(RATE * 5, 0.5, np.float32))
    snd.mixer.render(1024)
    snd.blackout()
    out = np.concatenate([snd.mixer.render(1024).copy() for _ in range(3)])
    assert np.abs(out[240:]).max() == 0.0  # 5 ms ramp, then nothing
    snd.resume()
    later = np.concatenate([snd.mixer.render(1024).copy() for _ in range(30)])
    assert np.abs(later).max() == 0.0  # the tone was dropped, not paused


def test_mixer_render_allocates_no_sample_buffers_per_block():
    """A temporary per block would grow with the block: compare the peak for 1024 and 8192 samples."""
    import tracemalloc

    def peak(n: int) -> int:
        m = Mixer(RATE)
        g = Sonifier(RATE).grain("a", 0.5, 0.2, TONES)[0]
        for k in range(40):
            m.schedule(k * 700, g)
        m.render(8192)  # buffers sized once
        m.volume = 0.5
        m.fade_to(0.2, 0.5)  # fades and volume ramps too
        tracemalloc.start()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(5):
            m.render(n)
        top = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        return top

    small, big = peak(1024), peak(8192)
    assert big - small < 4096, (small, big)  # one float32 temporary of 8192 samples is 32768 bytes


DEVICE_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, sys.argv[2])
    import numpy as np
    from performance.show.clock import MonotonicClock
    from performance.sound import SoundSystem
    from performance.sound import audio
    audio.RETRY_S = 0.3
    clock = MonotonicClock()
    snd = SoundSystem(clock, device="lectern_null", audio_out=sys.argv[1], speech=False)
    snd.start()
    seen = [snd.health()["device"]]
    tone = np.full(4800, 0.5, np.float32)
    marks = []
    def mark():
        at = clock.now() + 0.2
        snd.mixer.schedule(int(at * 48000), tone)
        marks.append(at)
    mark(); time.sleep(0.5)
    os.environ["LECTERN_FAULTS"] = "audio_device_lost"
    time.sleep(0.15)
    seen.append(snd.health()["device"])
    mark(); time.sleep(0.5)
    seen.append(snd.health()["device"])
    del os.environ["LECTERN_FAULTS"]
    time.sleep(0.6)
    seen.append(snd.health()["device"])
    mark(); time.sleep(0.5)
    end = clock.now()
    h = snd.health()
    snd.close()
    print(json.dumps({"seen": seen, "marks": marks, "end": end, "closed": clock.now(), "health": h}))
""")


def test_device_lost_falls_back_to_the_null_sink_and_comes_back(tmp_path):
    """A real PortAudio device: ALSA's null plugin, named in a private ~/.asoundrc."""
    (tmp_path / ".asoundrc").write_text('pcm.lectern_null { type null\n hint { show on description "test" } }\n')
    script = tmp_path / "device.py"
    script.write_text(DEVICE_SCRIPT)
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("LECTERN_FAULTS", None)
    r = subprocess.run([sys.executable, str(script), str(tmp_path / "d.wav"), str(ROOT)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["seen"] == ["lectern_null", "null", "null", "lectern_null"], got
    assert got["health"]["device_losses"] == 1
    audio = read_wav(tmp_path / "d.wav")
    # the WAV follows the engine clock throughout: it ends at the engine time of close()
    assert got["end"] * RATE <= len(audio) <= got["closed"] * RATE
    for at in got["marks"]:  # each tone is where the engine clock put it: on the device, null sink, device
        a = int(at * RATE)
        assert np.abs(audio[a:a + 4800]).min() > 0.45, at
        assert np.abs(audio[a - 2400:a - 100]).max() == 0.0, at
