"""`run.py render TRANSCRIPT.jsonl --out OUT.mp4`: a session re-rendered from its event log alone.

The same reducer and renderer as the live stage draw each frame at t = k / fps, so the picture is
frame for frame what the audience saw; frames whose view did not change are not drawn again (the
previous bytes are sent). The sound is rebuilt too: speech events say which line was spoken when
(the words come from the poem's tokens), token events with sonification on sound again.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

from performance.cli_types import window_size as parse
from performance.media import MediaError, encoder, encoder_said, mux, pix_fmt_of, raw_bytes
from performance.record.transcript import read_events
from performance.show.sound_settings import SonifySettings, VoiceSettings
from performance.sound.audio import Mixer
from performance.sound.sonify import Sonifier
from performance.sound.voice import SpeechWorker

RATE = 48000


def _size(text: str) -> tuple[int, int]:
    return parse(text)


def register_render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="re-render a session from its transcript as a video",
                       description="Re-render a session from its .jsonl transcript (no model needed), with its sound.")
    p.add_argument("transcript", type=Path, metavar="TRANSCRIPT.jsonl")
    p.add_argument("--out", type=Path, required=True, metavar="OUT.mp4")
    p.add_argument("--fps", type=int, default=30, help="frames per second (default 30)")
    p.add_argument("--size", type=_size, metavar="WxH", help="frame size (default: the session's stage size)")
    p.add_argument("--no-audio", action="store_true", help="picture only")
    p.set_defaults(func=run_render)


def run_render(args: argparse.Namespace) -> int:
    if not args.transcript.exists():
        print(f"error: {args.transcript}: not found", file=sys.stderr)
        return 2
    try:
        info = render(args.transcript, args.out, fps=args.fps, size=args.size, audio=not args.no_audio)
    except MediaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {info['frames']} frames ({info['drawn']} drawn), {info['seconds']:.1f} s of session "
          f"in {info['wall_s']:.1f} s = {info['speed']:.1f}× real time")
    return 0


def session_end(events: list[dict]) -> float:
    ends = [e["t"] for e in events if e["event"] == "session_end"]
    return ends[-1] if ends else max((e["t"] for e in events), default=0.0)


def render(transcript: Path, out: Path, fps: int = 30, size: tuple[int, int] | None = None, audio: bool = True) -> dict:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
    import pygame

    from performance.stage.draw import StageRenderer
    from performance.stage.view import StageState

    t_start = time.monotonic()
    events = sorted(read_events(transcript), key=lambda e: e["t"])  # stable: same-time events keep their order
    if not events:
        raise MediaError(f"{transcript}: no events")
    stage = next((e.get("stage") for e in events if e["event"] == "session_start"), None) or {}
    size = size or (int(stage.get("width", 1920)), int(stage.get("height", 1080)))
    end = session_end(events)
    n_frames = int(end * fps + 1e-6) + 1
    pygame.font.init()
    surface = pygame.Surface(size, 0, 32)
    fmt, direct = pix_fmt_of(surface)
    work = Path(tempfile.mkdtemp(prefix="lectern-render-"))
    video = work / "video.mkv"
    wav = work / "audio.wav"
    audio_thread = None
    if audio:
        audio_thread = threading.Thread(target=build_audio, args=(events, wav, end), daemon=True)
        audio_thread.start()
    proc = encoder(video, size, fps, fmt, ["-f", "matroska"])
    state, renderer = StageState(), StageRenderer(size)
    i, prev_key, prev_bytes, drawn = 0, None, b"", 0
    try:
        for k in range(n_frames):
            t = k / fps
            while i < len(events) and events[i]["t"] <= t + 1e-9:
                state.apply(events[i])
                i += 1
            view = state.frame(t)
            col_hl = view.columns[0].highlight if view.columns else None
            key = (view.version, round(view.brightness, 3),
                   None if view.countdown is None else math.ceil(view.countdown - 1e-9), col_hl)
            if key != prev_key:
                renderer.draw(surface, view)
                prev_bytes = raw_bytes(surface, direct)
                prev_key = key
                drawn += 1
            proc.stdin.write(prev_bytes)
    finally:
        proc.stdin.close()
        proc.wait()
    if proc.returncode != 0:
        raise MediaError(f"{out}: ffmpeg failed ({encoder_said(proc)[-300:]})")
    if audio_thread is not None:
        audio_thread.join()
    mux(video, wav if audio else None, out, duration=n_frames / fps)
    for f in (video, wav):
        f.unlink(missing_ok=True)
    wall = time.monotonic() - t_start
    return {"frames": n_frames, "drawn": drawn, "seconds": end, "wall_s": wall, "speed": end / max(wall, 1e-9)}


def build_audio(events: list[dict], wav_path: Path, end: float) -> None:
    """The session's sound from its events: speech at its recorded times, sonified tokens, fades."""

    mixer, son = Mixer(RATE), Sonifier(RATE)
    plan, poems, speech_jobs = _audio_timeline(events)
    if speech_jobs:
        plan.extend(_speech_cues(speech_jobs, poems))
    plan.sort(key=lambda p: p[0])  # stable: cues at the same time keep the order they were found in
    _mix_to_wav(mixer, son, plan, wav_path, end)


def _audio_timeline(events: list[dict]) -> tuple[list[tuple[float, str, object]], dict[int, str], list]:
    """Walk the events once: the timed cues (grains, fades, volume), each poem's text as its tokens
    spelled it, and the speech events paired with the voice settings of their scene."""

    poems: dict[int, str] = {}
    sonify: SonifySettings | None = None
    voice = VoiceSettings()
    speech_jobs = []
    plan: list[tuple[float, str, object]] = []
    for e in events:
        kind = e["event"]
        if kind == "scene":
            s = e.get("sonify_settings")
            sonify = SonifySettings(**s) if s and s.get("enabled") else None
            v = e.get("voice_settings")
            voice = VoiceSettings(**v) if v else VoiceSettings()
        elif kind == "token":
            poems[e["poem"]] = poems.get(e["poem"], "") + e["text"]
            if sonify is not None and e["text"].strip():
                plan.append((e["t"], "grain", (e["text"], e["p"], e["temperature"], sonify)))
        elif kind == "poem_end" and e.get("text"):
            poems.setdefault(e["n"], e["text"])
        elif kind == "speech":
            speech_jobs.append((e, voice))
        elif kind == "panic":
            plan.append((e["t"], "fade", (0.0, float(e.get("fade_s", 2.0)))))
        elif kind == "blackout":
            plan.append((e["t"], "fade", (0.0, 0.0)))
        elif kind == "resume":
            plan.append((e["t"], "fade", (1.0, 0.3)))
        elif kind == "command" and e.get("address") == "/lectern/volume" and e.get("applied"):
            plan.append((e["t"], "volume", float(e["args"][0])))
    return plan, poems, speech_jobs


def _speech_cues(speech_jobs: list, poems: dict[int, str]) -> list[tuple[float, str, object]]:
    """Speak every recorded line again with its scene's voice, in one speech worker; each answer
    becomes a cue at the line's recorded start, cut to its recorded length. Lines the worker does
    not answer in time are left silent."""

    done = threading.Event()
    rendered: dict[int, np.ndarray] = {}
    answered = [0]

    def got(job, samples, engine):
        if samples is not None:
            rendered[job["key"]] = samples
        answered[0] += 1
        if answered[0] >= len(speech_jobs):
            done.set()

    worker = SpeechWorker(got, rate=RATE)
    jobs = [_speech_job(e, v, poems) | {"key": key} for key, (e, v) in enumerate(speech_jobs)]
    worker.preload = next((j["voice"] for j in jobs if str(j["voice"]).startswith("piper:")), "")
    worker.start()
    for job in jobs:
        worker.submit(job)
    done.wait(30 + 5 * len(speech_jobs))
    worker.close()
    cues: list[tuple[float, str, object]] = []
    for key, (e, _) in enumerate(speech_jobs):
        if key in rendered:
            length = int((e["end"] - e["start"]) * RATE)
            cues.append((e["start"], "speech", rendered[key][:max(1, length)]))
    return cues


def _speech_job(e: dict, v, poems: dict[int, str]) -> dict:
    """The job that spoke a recorded line: the settings its speech event kept (a session since the
    Piper voice: the same text and settings give the same audio, so its lit words stay in sync),
    else its scene's voice; a line espeak-ng spoke for a failing Piper is spoken by espeak-ng again."""
    lines = [ln for ln in poems.get(e["poem"], "").strip("\n").split("\n") if ln.strip()]
    text = lines[e["line"]].strip() if e["line"] < len(lines) else ""
    job = {"voice": v.voice, "rate": v.rate, "pitch": v.pitch, "volume": v.volume}
    if isinstance(e.get("voice"), dict):
        job.update({k: x for k, x in e["voice"].items() if k in ("voice", "rate", "pitch", "volume", "length_scale",
                                                                  "variation", "emphasis")})
    if e.get("engine") in ("espeak-ng", "pyttsx3") and str(job["voice"]).startswith("piper:"):
        job["force_espeak"] = True
    return job | {"text": text or " "}


def _apply_cue(mixer, son, t: float, what: str, arg) -> None:
    """One timed cue into the mixer: a grain or a speech line scheduled at its sample, a fade or a
    volume change from the current block."""
    at = int(t * RATE)
    if what == "grain":
        mixer.schedule(at, son.grain(*arg)[0])
    elif what == "speech":
        mixer.schedule(at, arg)
    elif what == "fade":
        target, secs = arg
        mixer.fade_to(target, secs)  # from this block's start: within 21 ms of the event
    elif what == "volume":
        mixer.volume = arg


def _mix_to_wav(mixer, son, plan: list[tuple[float, str, object]], wav_path: Path, end: float) -> None:
    """Render the sorted cues block by block (1024 samples) into a 16-bit stereo WAV of `end`
    seconds plus a tenth; each cue is applied in the block it falls in."""
    total = int(end * RATE) + RATE // 10
    with wave.open(str(wav_path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        j = 0
        while mixer.position < total:
            block_end = mixer.position + 1024
            while j < len(plan) and int(plan[j][0] * RATE) < block_end:
                _apply_cue(mixer, son, *plan[j])
                j += 1
            block = mixer.render(min(1024, total - mixer.position))
            pcm = (np.clip(block, -1, 1) * 32767).astype(np.int16)
            w.writeframes(np.repeat(pcm, 2).tobytes())
