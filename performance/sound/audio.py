"""The one audio path: a mixer on the engine's clock, a PortAudio stream or a null sink, a WAV tap.

Sample k of the mix is engine time k / rate, so a recording, a transcript and the stage agree. A
real device pulls blocks in its callback; with no device (CI, headless, a gallery whose HDMI audio
vanished) a null-sink thread renders blocks paced by the engine clock, and the device is tried
again every few seconds. Master volume, panic fade and blackout act on the mix as a whole.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import wave
from pathlib import Path

import numpy as np

from performance import faults

log = logging.getLogger("lectern.audio")
BLOCK = 1024
RETRY_S = 3.0


class Mixer:
    """Sources scheduled at sample positions; `render(n)` mixes the next n samples (mono float32).

    `schedule` is called from other threads and only appends to a queue; render (the audio owner's
    thread) moves new sources into its own list, so no lock is held while mixing.
    """

    def __init__(self, rate: int = 48000) -> None:
        self.rate = rate
        self.position = 0  # next sample to render
        self._incoming: queue.SimpleQueue = queue.SimpleQueue()
        self._sources: list[list] = []  # [start sample, array, gain]
        self.volume = 1.0
        self._gain = 1.0
        self._fade: tuple[int, int, float, float] | None = None  # (start, end sample, from, to)
        self._buf = np.zeros(BLOCK, np.float32)
        self.peak = 0.0

    def schedule(self, at_sample: int, samples: np.ndarray, gain: float = 1.0) -> None:
        self._incoming.put((at_sample, samples, gain))

    def clear(self) -> None:
        self._incoming.put(None)

    def fade_to(self, target: float, seconds: float) -> None:
        """Ramp the master gain to `target` over `seconds` from now (0 = at once)."""
        start = self.position
        self._incoming.put(("fade", start, start + int(seconds * self.rate), target))

    def render(self, n: int) -> np.ndarray:
        while True:
            try:
                item = self._incoming.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._sources.clear()
            elif item[0] == "fade":
                _, a, b, target = item
                self._fade = (a, max(a, b), self._gain, target)
            else:
                at, arr, gain = item
                self._sources.append([max(at, self.position), arr, gain])
        if len(self._buf) < n:
            self._buf = np.zeros(n, np.float32)
        out = self._buf[:n]
        out[:] = 0.0
        start, end = self.position, self.position + n
        keep = []
        for src in self._sources:
            s0, arr, gain = src
            if s0 >= end:
                keep.append(src)
                continue
            a = s0 - start  # where it begins in this block (>= 0 by construction)
            off = start - s0 if s0 < start else 0
            a = max(0, a)
            count = min(n - a, len(arr) - off)
            if count > 0:
                out[a:a + count] += arr[off:off + count] * gain
            if off + count < len(arr):
                keep.append(src)
        self._sources = keep
        # master gain with an optional linear fade
        if self._fade is not None:
            fa, fb, g0, g1 = self._fade
            pos = np.arange(start, end, dtype=np.float64)
            frac = np.clip((pos - fa) / max(1, fb - fa), 0.0, 1.0) if fb > fa else np.ones(n)
            ramp = (g0 + (g1 - g0) * frac).astype(np.float32)
            out *= ramp * self.volume
            if end >= fb:
                self._gain = g1
                self._fade = None
                if g1 == 0.0:
                    self._sources.clear()
        else:
            out *= self._gain * self.volume
        np.clip(out, -1.0, 1.0, out=out)
        self.peak = max(self.peak * 0.9, float(np.abs(out).max()) if n else 0.0)
        self.position = end
        return out


class WavTap:
    """Writes the mix to a 16-bit stereo WAV on its own thread."""

    def __init__(self, path: Path, rate: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._w = wave.open(str(path), "wb")
        self._w.setnchannels(2)
        self._w.setsampwidth(2)
        self._w.setframerate(rate)
        self._q: queue.Queue = queue.Queue(maxsize=4096)
        self._t = threading.Thread(target=self._run, name="lectern-wav", daemon=True)
        self._t.start()
        self.dropped = 0

    def write(self, block: np.ndarray) -> None:
        try:
            self._q.put_nowait(block.copy())
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            block = self._q.get()
            if block is None:
                break
            pcm = (np.clip(block, -1, 1) * 32767).astype(np.int16)
            self._w.writeframes(np.repeat(pcm, 2).tobytes())

    def close(self) -> None:
        self._q.put(None)
        self._t.join(10)
        self._w.close()


class Output:
    """Moves the mix to a device or a null sink, on the engine clock; retries a lost device."""

    def __init__(self, mixer: Mixer, clock, *, device: str | int | None, want_device: bool,
                 tap: WavTap | None) -> None:
        self.mixer = mixer
        self.clock = clock
        self.device = device
        self.want_device = want_device
        self.tap = tap
        self.stream = None
        self.device_name = "null"
        self.underruns = 0
        self._lock = threading.Lock()  # serialises render between the callback and the null sink
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._null_sink, name="lectern-audio", daemon=True)
        self._last_try = 0.0

    def start(self) -> None:
        if self.want_device:
            self._open_device()
        self._thread.start()

    def _open_device(self) -> None:
        self._last_try = time.monotonic()
        if faults.active("audio_device_lost"):
            return
        try:
            import sounddevice as sd

            dev = int(self.device) if isinstance(self.device, str) and self.device.isdigit() else self.device
            stream = sd.OutputStream(samplerate=self.mixer.rate, channels=2, dtype="float32", blocksize=BLOCK,
                                     device=dev, callback=self._callback)
            with self._lock:
                self.mixer.position = max(self.mixer.position, int(self.clock.now() * self.mixer.rate))
            stream.start()
            self.stream = stream
            self.device_name = str(sd.query_devices(stream.device)["name"])
            log.info("audio on %s", self.device_name)
        except Exception as e:  # no device is not a reason to stop the show
            if self.device_name != "null" or self._last_try == 0.0:
                log.warning("no audio device (%s); running on a null sink", e)
            self.stream = None
            self.device_name = "null"

    def _callback(self, outdata, frames, time_info, status) -> None:
        if status.output_underflow:
            self.underruns += 1
        with self._lock:
            block = self.mixer.render(frames)
        outdata[:, 0] = block
        outdata[:, 1] = block
        if self.tap is not None:
            self.tap.write(block)

    def render_until(self, t: float) -> None:
        """Render (to the null sink / tap) everything up to engine time t."""
        target = int(t * self.mixer.rate)
        with self._lock:
            while self.mixer.position < target:
                n = min(BLOCK, target - self.mixer.position)
                block = self.mixer.render(n)
                if self.tap is not None:
                    self.tap.write(block)

    def _null_sink(self) -> None:
        while not self._stop.wait(0.01):
            if self.stream is not None:
                if faults.active("audio_device_lost") or not self.stream.active:
                    log.warning("audio device lost; continuing on a null sink")
                    try:
                        self.stream.close()
                    except Exception:
                        pass
                    self.stream = None
                    self.device_name = "null"
                continue
            if self.want_device and time.monotonic() - self._last_try > RETRY_S:
                self._open_device()
                continue
            self.render_until(self.clock.now())

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        if self.stream is not None:
            try:
                self.stream.stop()
                self.stream.close()
            except Exception:
                pass
        elif hasattr(self.clock, "advance") is False:
            self.render_until(self.clock.now())
