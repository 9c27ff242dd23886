"""Drift between the lit word on the stage and the word in the audio, over a long reading.

    nice -n 10 .venv/bin/python bench/bench_voice_drift.py [--minutes 10] [--voice piper:en_US-joe-medium]

The real parts on a fake clock, time-compressed: the real SoundSystem (speech worker process with
the Piper voice, the mixer, the WAV tap) speaks a reading of `--minutes` of verse; the engine clock
moves in 1/30 s frames as fast as the CPU allows, and waits (in wall time only) while the voice
still synthesises the next line, so the reading is continuous on the engine clock. Each
SpeechEvent becomes the engine's speech event and is folded into a real StageState; every frame
records which word the stage lights. After the run, the mix is decoded from the WAV file:

- `screen`: the first frame at which the stage lights word k of a line;
- `audio` (every word): where the utterance actually lies in the decoded mix (found by
  cross-correlating the line's synthesised audio against the mix, ±0.3 s) plus the word's start
  within it (Piper's alignment);
- `onset` (words after a pause ≥ 80 ms): the first 5 ms in the decoded mix louder than 10 % of the
  line's loudest, found from the audio alone.

drift = screen − audio. Prints JSON: max/p95/p50 |drift| for both measures, the mean drift of the
first and the last minute (accumulation), words and lines counted, sox's stat of the mix. Goal:
max |drift| ≤ 100 ms. A 30 fps stage quantises by up to 33 ms on its own.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from performance.show.clock import FakeClock  # noqa: E402
from performance.show.sound_settings import PIPER_DEFAULT  # noqa: E402
from performance.sound import SoundSystem, Utterance, VoiceSettings  # noqa: E402
from performance.stage.view import StageState  # noqa: E402

RATE = 48000
FPS = 30
NOUNS = "sea light river stone window lamp wind field bird night morning harbour glass road hill rain".split()
ADJ = "grey old slow quiet bright cold narrow open small far green white".split()
VERBS = "keeps walks turns holds carries folds leaves finds opens gathers".split()


def verse(rng: random.Random) -> str:
    """One line of plain verse (numbers now and then: they are read as words)."""
    shapes = [lambda: f"the {rng.choice(ADJ)} {rng.choice(NOUNS)} {rng.choice(VERBS)} the {rng.choice(NOUNS)}",
              lambda: f"and {rng.choice(NOUNS)} {rng.choice(VERBS)} over {rng.randint(2, 40)} {rng.choice(NOUNS)}s,",
              lambda: f"{rng.choice(ADJ)} as a {rng.choice(NOUNS)} in the {rng.choice(ADJ)} {rng.choice(NOUNS)}."]
    return rng.choice(shapes)()


def run_reading(minutes: float, voice: str, wav: Path) -> tuple[list[dict], dict, dict]:
    """Speak for `minutes` of engine time; (speech events, first lit frame per (poem, line, word), audio by text)."""
    clock = FakeClock()
    snd = SoundSystem(clock, audio_out=wav, null_sink=True, preload_voice=voice)
    audio: dict[str, np.ndarray] = {}
    render = snd.worker.render_timed

    def keep(job):  # the line's own audio, to find it again in the mix
        r = render(job)
        if r.samples is not None:
            audio[job["text"]] = r.samples
        return r

    snd.worker.render_timed = keep
    snd.start()
    v = VoiceSettings(mode="line", when_behind="hold", voice=voice, line_pause=0.35, stanza_pause=0.8)
    rng = random.Random(7)
    stage, events, lit, texts = StageState(), [], {}, {}
    n_line, poem, uid = 0, 1, 0
    end = minutes * 60
    while clock.now() < end:
        while snd.speech_backlog() < 3:  # a poem of 4 lines, then the next
            uid += 1
            texts[uid] = verse(rng)
            snd.speak(Utterance(uid, poem, n_line, texts[uid], v, 0.7))
            n_line += 1
            if n_line == 4:
                poem, n_line = poem + 1, 0
        t0 = time.monotonic()
        while snd._pending and not snd.mixer.voice_waiting() and time.monotonic() - t0 < 30:
            time.sleep(0.002)  # the voice is still synthesising: engine time waits for it
        clock.advance(1 / FPS)
        snd.render_until(clock.now())
        for ev in snd.poll():
            # the speech event as the engine writes it from the SpeechStarted message
            e = {"t": clock.now(), "event": "speech", "poem": ev.poem, "line": ev.line, "start": ev.start,
                 "end": ev.end, "words": [list(w) for w in ev.words], "engine": ev.engine}
            events.append(e | {"_text": texts[ev.id]})
            stage.apply(e)
        f = stage.frame(clock.now())
        col = f.columns[0]
        if col.highlight is not None and col.word is not None:
            lit.setdefault((col.highlight, col.word), clock.now())
    health = snd.health()
    snd.close()
    return events, lit, {"audio": audio, "health": health}


def decode(wav: Path) -> np.ndarray:
    with wave.open(str(wav)) as w:
        a = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, w.getnchannels())[:, 0]
    return a.astype(np.float32) / 32768


def locate(mix: np.ndarray, line: np.ndarray, guess: float) -> float | None:
    """Where `line` begins in the mix near `guess` (s), by cross-correlation of 4 ms envelopes
    refined on the samples."""
    lo = max(0, int((guess - 0.3) * RATE))
    seg = mix[lo:lo + len(line) + int(0.6 * RATE)]
    if len(seg) < len(line):
        return None
    corr = np.correlate(seg[:len(line) + int(0.6 * RATE)], line[:min(len(line), RATE)], mode="valid")
    return (lo + int(np.argmax(corr))) / RATE


def onset(mix: np.ndarray, a: float, prev_end: float, peak: float) -> float | None:
    """From the quietest 5 ms of the pause before a word, the first 5 ms louder than 10 % of the
    line's peak (audio only: the alignment only says where the pause is)."""
    hop = int(0.005 * RATE)
    lo, hi = int(prev_end * RATE), int((a + 0.15) * RATE)
    if hi - lo < 3 * hop or lo < 0:
        return None
    env = np.sqrt((mix[lo:lo + (hi - lo) // hop * hop] ** 2).reshape(-1, hop).mean(axis=1))
    gap = int((a - prev_end) * RATE) // hop
    q = int(np.argmin(env[:max(1, gap)]))  # the bottom of the pause
    if env[q] > 0.05 * peak:
        return None  # no real pause: the words run together
    for i in range(q, len(env)):
        if env[i] > 0.1 * peak:
            return (lo + i * hop) / RATE
    return None


def measure(events: list[dict], lit: dict, audio: dict, mix: np.ndarray) -> dict:
    aligned, onsets, timeline = [], [], []
    for e in events:
        samples = audio.get(e["_text"])
        found = locate(mix, samples, e["start"]) if samples is not None else None
        if found is None:
            continue
        seg = mix[int(e["start"] * RATE):int(e["end"] * RATE)]
        n = len(seg) // 240  # the loudest 5 ms of the line
        peak = float(np.sqrt((seg[:n * 240] ** 2).reshape(n, 240).mean(axis=1)).max()) if n else 0.0
        prev_end = e["start"]
        for k, a, b in e["words"]:
            screen = lit.get(((e["poem"], e["line"]), k))
            if screen is None:
                continue
            audio_t = found + (a - e["start"])
            aligned.append(screen - audio_t)
            timeline.append((audio_t, screen - audio_t))
            if a - prev_end >= 0.08 and peak > 0:
                o = onset(mix, a, prev_end, peak)
                if o is not None:
                    onsets.append(screen - o)
            prev_end = b
    return {"aligned": aligned, "onsets": onsets, "timeline": timeline}


def summary(xs: list[float]) -> dict:
    a = np.abs(np.array(xs)) * 1000 if xs else np.zeros(1)
    return {"words": len(xs), "max_abs_ms": round(float(a.max()), 1), "p95_abs_ms": round(float(np.percentile(a, 95)), 1),
            "p50_abs_ms": round(float(np.percentile(a, 50)), 1),
            "mean_ms": round(float(np.mean(xs) * 1000), 1) if xs else 0.0,
            "most_negative_ms": round(float(min(xs)) * 1000, 1) if xs else 0.0,  # screen before the audio
            "most_positive_ms": round(float(max(xs)) * 1000, 1) if xs else 0.0,  # screen after the audio
            "over_100ms": int((a > 100).sum()) if xs else 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--voice", default=PIPER_DEFAULT)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lectern-drift-"))
    wav = tmp / "mix.wav"
    t0 = time.monotonic()
    events, lit, extra = run_reading(args.minutes, args.voice, wav)
    wall = time.monotonic() - t0
    mix = decode(wav)
    m = measure(events, lit, extra["audio"], mix)
    first = [d for t, d in m["timeline"] if t < 60]
    last = [d for t, d in m["timeline"] if t > args.minutes * 60 - 60]
    sox = subprocess.run(["sox", str(wav), "-n", "stat"], capture_output=True, text=True).stderr
    stat = {ln.split(":")[0].strip(): ln.split(":")[1].strip() for ln in sox.splitlines() if ":" in ln}
    out = {"minutes": args.minutes, "voice": args.voice, "engines": sorted({str(e["engine"]) for e in events}),
           "lines": len(events), "wall_s": round(wall, 1), "fps": FPS,
           "drift_every_word": summary(m["aligned"]), "drift_onsets_after_pauses": summary(m["onsets"]),
           "mean_drift_first_minute_ms": round(float(np.mean(first)) * 1000, 1) if first else None,
           "mean_drift_last_minute_ms": round(float(np.mean(last)) * 1000, 1) if last else None,
           "goal_max_abs_ms": 100, "sox": {k: stat.get(k) for k in ("Length (seconds)", "RMS     amplitude",
                                                                     "Maximum amplitude")},
           "health": {k: extra["health"][k] for k in ("speech_engine", "speech_restarts", "speech_skipped")}}
    out["pass"] = out["drift_every_word"]["max_abs_ms"] <= 100 and out["drift_onsets_after_pauses"]["max_abs_ms"] <= 100
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
