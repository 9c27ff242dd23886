"""The parent side of speech: a thread that feeds the worker process one job at a time, times it
out, kills and restarts a hung or dead worker (the next line is still spoken), and hands finished
audio to the mixer.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from performance import faults

log = logging.getLogger("lectern.voice")
ROOT = Path(__file__).resolve().parents[2]


def read_wav(path: str | Path, rate: int) -> np.ndarray:
    """A mono float32 array at `rate` from a 16-bit WAV (band-limited resampling: Piper's 22 kHz
    lines linearly interpolated to 48 kHz would carry mirror images of the voice up to 24 kHz)."""
    with wave.open(str(path)) as w:
        sr, ch, n = w.getframerate(), w.getnchannels(), w.getnframes()
        data = np.frombuffer(w.readframes(n), dtype=np.int16).astype(np.float32) / 32768.0
    if ch > 1:
        data = data.reshape(-1, ch).mean(axis=1)
    if sr != rate and len(data):
        n_out = int(len(data) * rate / sr)
        spec = np.fft.rfft(data.astype(np.float64))
        out = np.zeros(n_out // 2 + 1, np.complex128)
        keep = min(len(spec), len(out))
        out[:keep] = spec[:keep]  # nothing above the source's Nyquist frequency
        data = (np.fft.irfft(out, n_out) * (n_out / len(data))).astype(np.float32)
    return data


PIPER_LOAD_S = 15.0  # a Piper voice's first line may wait for the voice to load (2-6 s on a busy CPU)


@dataclass
class Rendered:
    """One utterance from the worker: mono float32 at the mix's rate, the engine that spoke it,
    and (stage word, start s, end s) for each spoken word of the line."""

    samples: np.ndarray | None
    engine: str | None
    words: list[tuple[int, float, float]] = field(default_factory=list)


class SpeechWorker:
    """Owns the worker process. Either call `render(job)` from your own thread, or `submit(job)`
    and get `on_audio(job, samples, engine)` on this object's feeder thread.

    A job is a dict: text, voice, rate (words/min), pitch (0-99), volume (0-1); other keys ride along.
    """

    def __init__(self, on_audio: Callable[[dict, np.ndarray | None, str | None], None], rate: int = 48000,
                 timeout_base: float = 4.0) -> None:
        self.on_audio = on_audio
        self.rate = rate
        self.timeout_base = timeout_base
        self.jobs: queue.Queue[dict | None] = queue.Queue()
        self.restarts = 0
        self.engine_used: str | None = None
        self.proc: subprocess.Popen | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="lectern-speech-"))
        self._replies: queue.Queue[dict | None] = queue.Queue()
        self._stop = threading.Event()
        self._render_lock = threading.Lock()
        self._n = 0
        self._thread: threading.Thread | None = None
        self._warm: set[str] = set()  # Piper voices this process has spoken with
        self._said: set[str] = set()  # errors already logged: a broken voice gets one line, not one per line
        self.preload = ""  # a voice the worker loads as it starts (LECTERN_VOICE_PRELOAD)

    def start(self, thread: bool = True) -> None:
        """Start the process; with `thread`, also the feeder thread that serves `submit`."""
        self._spawn()
        if thread:
            self._thread = threading.Thread(target=self._run, name="lectern-speech", daemon=True)
            self._thread.start()

    def submit(self, job: dict) -> None:
        self.jobs.put(job)

    def cancel_waiting(self) -> int:
        n = 0
        while True:
            try:
                self.jobs.get_nowait()
                n += 1
            except queue.Empty:
                return n

    def close(self) -> None:
        self._stop.set()
        self.jobs.put(None)
        if self._thread is not None:
            self._thread.join(3)
        self._kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _spawn(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        if self.preload:
            env["LECTERN_VOICE_PRELOAD"] = self.preload
        self._warm = set()
        self.proc = subprocess.Popen([sys.executable, "-m", "performance.sound.speech_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
        proc = self.proc

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    self._replies.put(json.loads(line))
                except json.JSONDecodeError:
                    continue
            self._replies.put({"eof": proc.pid})

        threading.Thread(target=read, name="lectern-speech-reader", daemon=True).start()

    def _kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass

    def _restart(self, why: str) -> None:
        log.error("speech worker %s; restarting it", why)
        self.restarts += 1
        self._kill()
        while not self._replies.empty():
            self._replies.get_nowait()
        self._spawn()

    def _run(self) -> None:
        while not self._stop.is_set():
            job = self.jobs.get()
            if job is None:
                return
            try:
                samples, engine = self.render(job)
            except Exception:  # the voice thread must outlive any one line
                log.exception("speech job failed")
                samples, engine = None, None
            self.on_audio(job, samples, engine)

    def render(self, job: dict) -> tuple[np.ndarray | None, str | None]:
        """Render one utterance (blocking): (mono float32 at `rate`, engine); see `render_timed`."""
        r = self.render_timed(job)
        return r.samples, r.engine

    def render_timed(self, job: dict) -> Rendered:
        """Render one utterance (blocking, on the caller's thread), with its words' times.

        A worker that dies or hangs is killed and restarted and the job is tried once more, then with
        espeak-ng directly; Rendered(None, None) when nothing could speak it.
        """
        with self._render_lock:
            self._n += 1
            n = self._n
            path = self.tmp / f"u{n % 8}.wav"
            for attempt in (1, 2):
                wire = {k: v for k, v in job.items() if k not in ("utt", "key")} | {"id": n, "path": str(path)}
                if attempt == 2:
                    wire["force_espeak"] = True  # pyttsx3 or Piper may be what hung
                if faults.active("speech_worker_hang") and attempt == 1:
                    wire["fault"] = "hang"
                reply = self._ask(wire, n, self._timeout(job))
                if reply is None or "eof" in reply:
                    continue
                r = self._answer(reply, path)
                if r.engine == "piper":
                    self._warm.add(str(job.get("voice")))
                return r
            return Rendered(None, None)

    def _timeout(self, job: dict) -> float:
        voice = str(job.get("voice", ""))
        load = PIPER_LOAD_S if voice.startswith("piper:") and voice not in self._warm else 0.0
        return self.timeout_base + load + 0.05 * len(str(job.get("text", "")).split())

    def _ask(self, wire: dict, n: int, timeout: float) -> dict | None:
        """Send one job and wait for its reply; a hung or dead worker is restarted (None / eof)."""
        try:
            if self.proc is None or self.proc.stdin is None or self.proc.poll() is not None:
                raise BrokenPipeError
            self.proc.stdin.write(json.dumps(wire) + "\n")
            self.proc.stdin.flush()
            reply = self._wait_reply(n, timeout)
        except (BrokenPipeError, OSError):
            reply = {"eof": True}
        if reply is None:
            self._restart(f"hung for {timeout:.1f} s")
        elif "eof" in reply:
            self._restart("died")
        return reply

    def _answer(self, reply: dict, path: Path) -> Rendered:
        error = reply.get("error")
        if error and error not in self._said:  # one line per distinct trouble, the show goes on
            self._said.add(error)
            log.error("speech: %s%s", error, " — espeak-ng reads instead" if reply.get("ok") else "")
        if not reply.get("ok"):
            return Rendered(None, None)
        self.engine_used = reply.get("engine")
        try:
            samples = read_wav(path, self.rate)
        except (OSError, EOFError, wave.Error) as e:
            log.error("speech audio unreadable: %s", e)
            return Rendered(None, None)
        words = [(int(k), float(a), float(b)) for k, a, b in reply.get("words") or []]
        return Rendered(samples, self.engine_used, words)

    def _wait_reply(self, n: int, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                reply = self._replies.get(timeout=left)
            except queue.Empty:
                return None
            if "eof" in reply:
                if self.proc is not None and reply["eof"] == self.proc.pid:
                    return reply
                continue  # the end of a worker already replaced
            if reply.get("id") == n:
                return reply
