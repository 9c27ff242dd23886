"""The speech worker process: one utterance in, one WAV file out, over JSON lines on stdin/stdout.

It runs apart from the engine because pyttsx3 (espeak-ng underneath) can hang, leak, drop queued
say() calls, and let save_to_file capture later calls. So: a fresh pyttsx3 engine per job, only
save_to_file, never say(); and if pyttsx3 fails or writes nothing, espeak-ng's own command line.
The parent kills and restarts this process when a job takes too long.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import wave


def _pyttsx3(job: dict) -> bool:
    import pyttsx3

    engine = pyttsx3.init("espeak")
    try:
        engine.setProperty("rate", int(job["rate"]))
        engine.setProperty("volume", float(job["volume"]))
        engine.save_to_file(job["text"], job["path"])
        engine.runAndWait()
    finally:
        engine.stop()
        del engine
    return _has_audio(job["path"])


def _espeak(job: dict) -> bool:
    cmd = ["espeak-ng", "-w", job["path"], "-s", str(int(job["rate"])), "-p", str(int(job["pitch"])),
           "-a", str(int(200 * float(job["volume"]))), "-v", job.get("voice") or "en", job["text"]]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)
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
    for line in sys.stdin:
        job = json.loads(line)
        if job.get("fault") == "hang":
            time.sleep(3600)
        engine, error = None, None
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
