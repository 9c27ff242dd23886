"""Sound figures: cost of the calls the frame loop makes, of mixing one block, and of speech.

    .venv/bin/python bench/bench_sound.py [--json]

- speak / sonify / poll / speech_backlog: wall time per call on the engine's thread (p50, p99, max)
- render: one 1024-sample block with 40 grains sounding (the audio callback's work), p50/p99
- speech: seconds from speak() to the SpeechEvent on the null sink (render latency), per engine,
  and the real-time factor of the worker (seconds of audio per second of rendering)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from performance.show.clock import MonotonicClock  # noqa: E402
from performance.sound import SonifySettings, SoundSystem, Utterance, VoiceSettings  # noqa: E402
from performance.sound.audio import Mixer  # noqa: E402
from performance.sound.sonify import Sonifier  # noqa: E402
from performance.sound.voice import SpeechWorker  # noqa: E402

WORDS = "the sea is a grey mirror of old light and the wind walks over it slowly".split()


def stats(xs: list[float]) -> dict:
    a = np.array(xs) * 1e6
    return {"p50_us": round(float(np.percentile(a, 50)), 1), "p99_us": round(float(np.percentile(a, 99)), 1),
            "max_us": round(float(a.max()), 1)}


def timed(f, n: int) -> dict:
    out = []
    for i in range(n):
        t = time.perf_counter()
        f(i)
        out.append(time.perf_counter() - t)
    return stats(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res: dict = {}
    son_set = SonifySettings(enabled=True)
    clock = MonotonicClock()
    snd = SoundSystem(clock, null_sink=True)
    snd.start()
    v = VoiceSettings(mode="line", queue=3)
    rng = np.random.default_rng(0)
    res["sonify"] = timed(lambda i: snd.sonify(WORDS[i % len(WORDS)], float(rng.uniform(0.01, 1)),
                                               float(rng.uniform(0, 2)), son_set, clock.now()), 5000)
    res["speak"] = timed(lambda i: snd.speak(Utterance(i, 1, i, " ".join(WORDS[:6]), v, 0.7)), 2000)
    res["poll"] = timed(lambda i: snd.poll(), 5000)
    res["speech_backlog"] = timed(lambda i: snd.speech_backlog(), 5000)
    snd.close()

    m, s = Mixer(48000), Sonifier(48000)
    grains = [s.grain(w, 0.3, 0.7, son_set)[0] for w in WORDS]
    blocks = []
    for i in range(2000):
        if i % 3 == 0:
            for k in range(3):
                m.schedule(m.position + k * 300, grains[(i + k) % len(grains)])
        t = time.perf_counter()
        m.render(1024)
        blocks.append(time.perf_counter() - t)
    res["render_block_1024"] = stats(blocks[100:]) | {"block_us": round(1024 / 48000 * 1e6, 1)}

    line = "the grey sea walks slowly over old light"
    for tts in ("pyttsx3", "espeak-ng"):
        os.environ["LECTERN_TTS"] = tts
        w = SpeechWorker(lambda *a: None)
        w.start(thread=False)
        w.render({"text": "warm up", "voice": "en", "rate": 160, "pitch": 45, "volume": 0.9})
        took, audio = [], 0.0
        for _ in range(20):
            t = time.perf_counter()
            samples, _ = w.render({"text": line, "voice": "en", "rate": 160, "pitch": 45, "volume": 0.9})
            took.append(time.perf_counter() - t)
            audio += len(samples) / 48000
        w.close()
        res[f"speech_{tts}"] = {"render_ms_p50": round(1000 * float(np.median(took)), 1),
                                "render_ms_max": round(1000 * max(took), 1),
                                "realtime_factor": round(audio / sum(took), 1)}
    os.environ.pop("LECTERN_TTS", None)

    clock = MonotonicClock()
    snd = SoundSystem(clock, null_sink=True)
    snd.start()
    time.sleep(0.5)  # the worker has loaded pyttsx3
    quick = VoiceSettings(mode="line", line_pause=0.0, stanza_pause=0.0)  # latency, not the pauses
    lat = []
    for i in range(10):
        t0 = clock.now()
        snd.speak(Utterance(i, i, 0, "a short line", quick, 0.5))
        while not (ev := snd.poll()):
            time.sleep(0.001)
        lat.append(ev[0].start - t0)
        while snd.speaking():
            time.sleep(0.01)
    snd.close()
    res["speak_to_audio_s"] = {"p50": round(float(np.median(lat)), 3), "max": round(max(lat), 3)}
    if args.json:
        print(json.dumps(res))
    else:
        for k, val in res.items():
            print(f"{k:20s} {val}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
