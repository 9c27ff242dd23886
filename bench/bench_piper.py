"""Piper's speed and size in the speech worker, with a stage drawing beside it.

    nice -n 10 .venv/bin/python bench/bench_piper.py [--lines 12] [--no-stage]

- rtf: seconds of audio per second of synthesis, per line through the worker process (the JSON
  round trip and the WAV file included), median and min over `--lines` lines; the same for
  espeak-ng as the baseline measured in the same run;
- first_audio: a live SoundSystem on the real clock (null sink): seconds from a line being due
  (its Speak) to its first sample in the mix, cold (synthesised when due) and ahead (the line was
  passed as written 1.5 s before it is due, as the engine does for lines it has not revealed);
- worker memory: VmRSS (now) and VmHWM (peak) of the worker process with the voice loaded;
- stage: the reader layout drawn at 30 fps in this process (SDL dummy driver) while all this runs,
  with the frame rate it kept.
Goals: rtf ≥ 5, first audio ≤ 0.3 s, worker ≤ 400 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from performance.show.clock import MonotonicClock  # noqa: E402
from performance.show.sound_settings import PIPER_DEFAULT  # noqa: E402
from performance.sound import SoundSystem, Utterance, VoiceSettings  # noqa: E402
from performance.sound.voice import SpeechWorker  # noqa: E402

LINES = ["the grey sea keeps its promises to the harbour", "and the lamps in the window turn over slowly",
         "a narrow road of rain goes up the hill at night", "old light, cold light, the birds are gathering",
         "I carried 12 stones to the river and left them there", "what the wind folds, the morning opens again",
         "small as a field in the far green weather", "the glass remembers every face it held",
         "over the water a quieter water moves", "and nobody said the word, and the word stayed",
         "bright harbour, bright harbour, open your hands", "the last line is the one the sea keeps"]


def stage_load(stop: threading.Event, out: dict) -> None:
    """Draw the reader layout at 30 fps, as a show's frame loop would, and count the frames kept."""
    import pygame

    from performance.show.look import Look
    from performance.stage.draw import StageRenderer
    from performance.stage.view import StageState

    pygame.init()
    surf = pygame.Surface((1280, 720))
    s = StageState()
    s.apply({"t": 0.0, "event": "scene", "n": 1, "name": "b", "layout": "reader", "look": Look().to_dict(),
             "columns": [{"model": "m"}], "caption": False})
    s.apply({"t": 0.0, "event": "poem_start", "n": 1, "model": "m", "seed": 1, "column": 0})
    r = StageRenderer((1280, 720))
    frames, t0 = 0, time.monotonic()
    while not stop.is_set():
        t = time.monotonic() - t0
        if frames % 10 == 0:
            s.apply({"t": t, "event": "token", "poem": 1, "text": LINES[frames // 10 % 12].split()[0] + " ",
                     "column": 0, "temperature": 0.7, "p": 0.5})
        r.draw(surf, s.frame(t))
        frames += 1
        time.sleep(max(0.0, frames / 30 - (time.monotonic() - t0)))
    out["stage_fps"] = round(frames / (time.monotonic() - t0), 1)


def rtf(voice: str, n: int) -> dict:
    w = SpeechWorker(lambda *a: None)
    w.preload = voice
    w.start(thread=False)
    job = {"voice": voice, "rate": 160, "pitch": 45, "volume": 0.9, "length_scale": 1.0, "variation": 0.667}
    t0 = time.monotonic()
    w.render_timed(job | {"text": "warm up"})
    first = time.monotonic() - t0
    ratios, secs = [], []
    for i in range(n):
        t = time.monotonic()
        r = w.render_timed(job | {"text": LINES[i % len(LINES)]})
        dt = time.monotonic() - t
        ratios.append(len(r.samples) / w.rate / dt)
        secs.append(dt)
    mem = {}
    for line in Path(f"/proc/{w.pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            mem[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    engine = w.engine_used
    w.close()
    return {"engine": engine, "rtf_median": round(float(np.median(ratios)), 2), "rtf_min": round(min(ratios), 2),
            "synth_s_median": round(float(np.median(secs)), 3), "load_and_first_line_s": round(first, 2),
            "worker_rss_mb": mem.get("VmRSS"), "worker_peak_rss_mb": mem.get("VmHWM")}


def first_audio(voice: str, ahead: bool, n: int = 5) -> dict:
    clock = MonotonicClock()
    snd = SoundSystem(clock, null_sink=True, preload_voice=voice)
    snd.start()
    v = VoiceSettings(mode="line", voice=voice)
    snd.speak(Utterance(99, 0, 0, "warm up", v, 0.7))  # the voice loads before the first measured line
    while snd.speaking() or not snd.poll():
        time.sleep(0.01)
    lat = []
    for i in range(n):
        text = LINES[(i + 3) % len(LINES)]
        if ahead:
            snd.prepare(0, text, v, 0.7)
            time.sleep(1.5)  # the stage reveals the line word by word meanwhile
        due = clock.now()
        snd.speak(Utterance(i + 1, 1, 0, text, v, 0.7))
        got = []
        while not got:
            got = snd.poll()
            time.sleep(0.002)
        lat.append(got[0].start - due)
        while snd.speaking():
            time.sleep(0.01)
    hits = snd.ahead_hits
    snd.close()
    return {"median_s": round(float(np.median(lat)), 3), "max_s": round(max(lat), 3), "ahead_hits": hits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=12)
    ap.add_argument("--no-stage", action="store_true")
    args = ap.parse_args()
    stop, st = threading.Event(), {}
    th = None
    if not args.no_stage:
        th = threading.Thread(target=stage_load, args=(stop, st), daemon=True)
        th.start()
    out = {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2), "stage_running": not args.no_stage,
           "piper": rtf(PIPER_DEFAULT, args.lines), "espeak_baseline": rtf("espeak:en", args.lines),
           "first_audio_cold": first_audio(PIPER_DEFAULT, ahead=False),
           "first_audio_ahead": first_audio(PIPER_DEFAULT, ahead=True)}
    stop.set()
    if th is not None:
        th.join(2)
    out.update(st)
    p = out["piper"]
    out["goals"] = {"rtf_ge_5": p["rtf_median"] >= 5, "first_audio_ahead_le_0.3": out["first_audio_ahead"]["max_s"] <= 0.3,
                    "worker_le_400mb": (p["worker_peak_rss_mb"] or 0) <= 400}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
