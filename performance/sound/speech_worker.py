"""The speech worker process: one utterance in, one WAV file out, over JSON lines on stdin/stdout.

It runs apart from the engine because pyttsx3 (espeak-ng underneath) can hang, leak, drop queued
say() calls, and let save_to_file capture later calls. So: a fresh pyttsx3 engine per job, only
save_to_file, never say(); and if pyttsx3 fails or writes nothing, espeak-ng's own command line.
The parent kills and restarts this process when a job takes too long.

A job's `voice` chooses the synthesiser: "piper:NAME" (a Piper voice: the shipped one by name, or
a path to a voice folder or .onnx file; see piper_voice.py), "espeak:LANG" (espeak-ng's own
command line), or a bare espeak voice name as before (pyttsx3, then espeak-ng). A Piper voice that
is missing or broken answers with its one-line error and espeak-ng speaks the line instead. Every
engine reads the line's spoken form (speakable.py: numbers as words, no symbols) and the reply
carries each stage word's [index, start s, end s]: Piper's alignments, or for espeak-ng times read
from the audio (timing.py).

What pyttsx3 2.99's espeak driver does here (espeak-ng 1.51): espeak is initialised once per
process in retrieval mode; `say()` keeps only the last text and plays it through `aplay` (queued
calls are dropped, nothing comes back to us); `save_to_file` sets a file that is never cleared, so
a later `say()` overwrites it; word events fire while synthesising, before any audio could play;
`runAndWait` polls until espeak reports the end of the message. `save_to_file` on a fresh engine,
one text per job, writes a correct 22,050 Hz mono WAV in 10-40 ms: that is what we use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import wave

import numpy as np

from performance.sound.piper_voice import PiperSpeaker, VoiceError, seed_for
from performance.sound.speakable import speakable
from performance.sound.timing import estimate_words

PRELOAD_ENV = "LECTERN_VOICE_PRELOAD"  # a voice to load before the first job (the parent sets it)
BROKEN_PIPER_FAULT = "piper_broken"  # LECTERN_FAULTS=piper_broken: every Piper voice fails to load
EMPHASIS_GAIN = 1.6


def _pyttsx3(job: dict) -> bool:
    # lazy: the device library loads only when the device is opened; a machine without it plays on without this part
    import pyttsx3

    engine = pyttsx3.init("espeak")  # a fresh driver per job: its state (voice, rate, file) resets
    try:
        if job.get("voice"):
            engine.setProperty("voice", job["voice"])  # an unknown name is ignored: the default voice
        engine.setProperty("rate", int(job["rate"]))
        engine.setProperty("pitch", int(job.get("pitch", 50)))
        engine.setProperty("volume", float(job["volume"]))
        engine.save_to_file(job["text"], job["path"])
        engine.runAndWait()
    finally:
        engine.stop()
        del engine
    return _has_audio(job["path"])


def _espeak(job: dict) -> bool:
    cmd = ["espeak-ng", "-w", job["path"], "-s", str(int(job["rate"])), "-p", str(int(job["pitch"])),
           "-a", str(int(100 * float(job["volume"]))), "-v", job.get("voice") or "en", "--stdin"]
    # the text goes on stdin: a line that begins with "-" must not read as an option
    subprocess.run(cmd, input=job["text"].encode(), check=True, capture_output=True, timeout=30)
    return _has_audio(job["path"])


def _has_audio(path: str) -> bool:
    try:
        with wave.open(path) as w:
            return w.getnframes() > 0
    except (OSError, EOFError, wave.Error):
        return False


def _read(path: str) -> tuple[np.ndarray, int]:
    with wave.open(path) as w:
        rate, ch = w.getframerate(), w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    return (data.reshape(-1, ch).mean(axis=1) if ch > 1 else data), rate


def _write(path: str, audio: np.ndarray, rate: int) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())


class Voices:
    """The Piper voices this process has loaded (or failed to load: a broken voice is tried once)."""

    def __init__(self) -> None:
        self._loaded: dict[str, object] = {}

    def get(self, name: str):
        """The PiperSpeaker for `name`; raises VoiceError (with its one line) when it cannot be had."""

        if name not in self._loaded:
            try:
                if BROKEN_PIPER_FAULT in os.environ.get("LECTERN_FAULTS", ""):
                    raise VoiceError(f"voice piper:{name}: broken (fault injected)")
                self._loaded[name] = PiperSpeaker(name)
            except VoiceError as e:
                self._loaded[name] = e
        got = self._loaded[name]
        if isinstance(got, Exception):
            raise got
        return got


def _piper(job: dict, name: str, voices: Voices) -> list:
    """Speak the job with a Piper voice into its WAV; the stage words' times."""

    sp = speakable(job["text"])
    length_scale = float(job.get("length_scale", 1.0))
    variation = float(job.get("variation", 0.667))
    seed = int(job.get("seed", seed_for(sp.text, length_scale, variation)))
    out = voices.get(name).speak(sp, length_scale, variation, seed, float(job.get("volume", 1.0)))
    emphasis = {w.lower() for w in job.get("emphasis") or []}
    for k, a, b in out.words:  # an emphasised word is said louder (its samples are known exactly)
        if sp.stage_words[k].strip(".,;:!?\"'—-").lower() in emphasis:
            seg = out.audio[int(a * out.rate):int(b * out.rate)]
            np.clip(seg * EMPHASIS_GAIN, -1.0, 1.0, out=seg)
    _write(job["path"], out.audio, out.rate)
    return [[k, round(a, 4), round(b, 4)] for k, a, b in out.words]


def _espeak_words(job: dict) -> list:
    audio, rate = _read(job["path"])
    sp = speakable(job["text"])
    return [[k, round(a, 4), round(b, 4)] for k, a, b in estimate_words(audio, rate, sp.words, sp.owner)]


def speak(job: dict, voices: Voices, prefer: str) -> dict:
    """One job: the reply the parent reads (ok, engine, words, error)."""
    kind, _, name = str(job.get("voice") or "en").partition(":")
    if not name:
        kind, name = "legacy", kind
    engine, error, words = None, None, []
    if kind == "piper" and not job.get("force_espeak"):
        try:
            words = _piper(job, name, voices)
            engine = "piper"
        except Exception as e:  # a missing or broken voice: espeak-ng reads the line instead
            error = str(e) if type(e).__name__ == "VoiceError" else f"piper: {type(e).__name__}: {e}"
    plain = dict(job, text=speakable(job["text"]).text, voice="en" if kind == "piper" else name)
    if engine is None and kind == "legacy" and prefer == "pyttsx3" and not job.get("force_espeak"):
        try:
            if _pyttsx3(plain):
                engine = "pyttsx3"
        except Exception as e:  # pyttsx3 failing is why the fallback exists
            error = f"pyttsx3: {e}"
    if engine is None:
        try:
            if _espeak(plain):
                engine = "espeak-ng"
        except Exception as e:
            error = f"{error + '; ' if error else ''}espeak-ng: {e}"
    if engine in ("pyttsx3", "espeak-ng"):
        words = _espeak_words(job)
    return {"id": job["id"], "ok": engine is not None, "engine": engine, "error": error, "words": words}


def main() -> None:
    prefer = os.environ.get("LECTERN_TTS", "pyttsx3")
    # replies get their own copy of stdout; pyttsx3 prints chatter ("Audio saved to ...") to stdout
    proto = os.fdopen(os.dup(1), "w")
    sys.stdout = sys.stderr
    if prefer == "pyttsx3":
        try:  # load it (and espeak's voice data) now, not on the first line of the show
            # lazy: the device library loads only when the device is opened; a machine without it plays on without this part
            import pyttsx3  # noqa: F401
        except Exception:
            prefer = "espeak-ng"
    voices = Voices()
    preload = os.environ.get(PRELOAD_ENV, "")
    if preload.startswith("piper:"):
        try:  # the voice loads while the show starts, not on its first line
            voices.get(preload.partition(":")[2])
        except Exception:
            pass  # its error is answered with the first line that asks for it
    for line in sys.stdin:
        job = json.loads(line)
        if job.get("fault") == "hang":
            time.sleep(3600)
        try:  # a file left by an earlier job must not pass for this one's audio
            os.remove(job["path"])
        except OSError:
            pass
        proto.write(json.dumps(speak(job, voices, prefer)) + "\n")
        proto.flush()


if __name__ == "__main__":
    main()
