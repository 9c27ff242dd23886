"""The speech worker process: one utterance in, one WAV file out, over JSON lines on stdin/stdout.

It runs apart from the engine because pyttsx3 (espeak-ng underneath) can hang, leak, drop queued
say() calls, and let save_to_file capture later calls. So: a fresh pyttsx3 engine per job, only
save_to_file, never say(); and if pyttsx3 fails or writes nothing, espeak-ng's own command line.
The parent kills and restarts this process when a job takes too long.

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
    for line in sys.stdin:
        job = json.loads(line)
        if job.get("fault") == "hang":
            time.sleep(3600)
        engine, error = None, None
        try:  # a file left by an earlier job must not pass for this one's audio
            os.remove(job["path"])
        except OSError:
            pass
        if prefer == "pyttsx3" and not job.get("force_espeak"):
            try:
                if _pyttsx3(job):
                    engine = "pyttsx3"
            except Exception as e:  # pyttsx3 failing is why the fallback exists
                error = f"pyttsx3: {e}"
        if engine is None:
            try:
                if _espeak(job):
                    engine = "espeak-ng"
            except Exception as e:
                error = f"{error + '; ' if error else ''}espeak-ng: {e}"
        proto.write(json.dumps({"id": job["id"], "ok": engine is not None, "engine": engine, "error": error}) + "\n")
        proto.flush()


if __name__ == "__main__":
    main()
