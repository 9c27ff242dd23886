"""The one audio path: a mixer on the engine's clock, a PortAudio stream or a null sink, a WAV tap.

Sample k of the mix is engine time k / rate, so a recording, a transcript and the stage agree.
A real device pulls blocks in its callback, and the callback keeps the mix on the engine clock
(a device that runs fast gets silence, one that runs slow skips ahead; the WAV tap still receives
every sample). With no device (CI, headless, a gallery whose HDMI audio vanished) a null-sink
thread renders blocks paced by the engine clock, and the wanted device is tried again every few
seconds. Master volume, panic fade and blackout act on the mix as a whole.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import time
import wave
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from performance import faults

log = logging.getLogger("lectern.audio")
BLOCK = 1024  # 21 ms at 48 kHz
RETRY_S = 3.0  # how often a wanted but missing device is tried again
SLACK_BLOCKS = 2  # how far (in blocks) the device may drift from the engine clock before we resync
TICK_S = 0.01  # null-sink and supervision period


class Mixer:
    """Sources scheduled at sample positions; `render(n)` mixes the next n samples (mono float32).

    Other threads only put messages on a queue (`schedule`, `fade_to`, `queue_voice`, ...); the
    thread that renders (the audio owner) applies them at the start of the next block, so no lock
    is held while mixing and nothing is allocated per block except small Python tuples.

    The voice is a track of its own: rendered utterances wait in line and each starts when the
    previous one has ended plus its gap, at the moment the mix reaches it; `started` then receives
    (tag, start sample, end sample), which is exactly where the utterance lies in the mix.
    """

    def __init__(self, rate: int = 48000) -> None:
        self.rate = rate
        self.position = 0  # next sample to render
        self.volume = 1.0  # master volume, set from any thread
        self.peak = 0.0
        self.started: queue.SimpleQueue[tuple[Any, int, int]] = queue.SimpleQueue()
        self.voice_until = 0  # sample where the utterance now playing ends
        self.voice_queued = 0  # utterances handed to queue_voice (written only by the caller's thread)
        self.voice_done = 0  # of those, started or dropped (written only by the render thread)
        self._incoming: queue.SimpleQueue = queue.SimpleQueue()
        self._sources: list[list] = []  # [start sample, array, is_voice]
        self._voice_line: deque[tuple[Any, np.ndarray, int, int]] = deque()  # (tag, samples, gap, arrived)
        self._gain = 1.0  # fade gain (panic / blackout / resume)
        self._fade: tuple[int, int, float, float] | None = None  # (start, end sample, from, to)
        self._vol = 1.0  # volume as applied at the end of the last block
        self._alloc(BLOCK)

    def _alloc(self, n: int) -> None:
        self._buf = np.zeros(n, np.float32)
        self._ramp = np.zeros(n, np.float32)
        self._idx = np.arange(n, dtype=np.float32)
        self._volbuf = np.zeros(n, np.float32)

    # ---- called from any thread -----------------------------------------------------------------
    def schedule(self, at_sample: int, samples: np.ndarray, gain: float = 1.0) -> None:
        """Play `samples` from sample `at_sample` (or as soon as possible, if that is past)."""
        if gain != 1.0:
            samples = samples * np.float32(gain)  # scaled here, in the caller's thread
        self._incoming.put(("play", at_sample, samples))

    def queue_voice(self, tag: Any, samples: np.ndarray, gap_s: float) -> None:
        """Line an utterance up on the voice track, `gap_s` after the previous one ends."""
        self.voice_queued += 1
        self._incoming.put(("voice", tag, samples, int(gap_s * self.rate)))

    def voice_waiting(self) -> int:
        """Utterances lined up that have not started yet."""
        return max(0, self.voice_queued - self.voice_done)

    def voice_playing(self) -> bool:
        return self.voice_until > self.position

    def cancel_voice(self, stop_current: bool = False) -> None:
        """Drop the utterances waiting on the voice track (and the one playing, if asked)."""
        self._incoming.put(("cancel_voice", stop_current))

    def clear(self) -> None:
        """Silence everything scheduled."""
        self._incoming.put(("clear",))

    def fade_to(self, target: float, seconds: float) -> None:
        """Ramp the fade gain to `target` over `seconds`, from the next block (0 = at once)."""
        self._incoming.put(("fade", target, seconds))

    # ---- the render thread ----------------------------------------------------------------------
    def _apply_messages(self) -> None:
        while True:
            try:
                msg = self._incoming.get_nowait()
            except queue.Empty:
                return
            kind = msg[0]
            if kind == "play":
                self._sources.append([max(msg[1], self.position), msg[2], False])
            elif kind == "voice":
                self._voice_line.append((msg[1], msg[2], msg[3], self.position))
            elif kind == "fade":
                start = self.position
                self._fade = (start, start + int(msg[2] * self.rate), self._gain, float(msg[1]))
            elif kind == "cancel_voice":
                self._drop_voice(stop_current=msg[1])
            elif kind == "clear":
                self._sources.clear()
                self._drop_voice(stop_current=True)

    def _drop_voice(self, stop_current: bool) -> None:
        self.voice_done += len(self._voice_line)
        self._voice_line.clear()
        if stop_current:
            self._sources = [s for s in self._sources if not s[2]]
            self.voice_until = self.position

    def _start_voice(self, end: int) -> None:
        while self._voice_line:
            tag, samples, gap, arrived = self._voice_line[0]
            start = max(arrived, self.voice_until + gap if self.voice_until > 0 else arrived)
            if start >= end:
                return
            self._voice_line.popleft()
            self.voice_done += 1
            start = max(start, self.position)
            self._sources.append([start, samples, True])
            self.voice_until = start + len(samples)
            self.started.put((tag, start, self.voice_until))

    def render(self, n: int) -> np.ndarray:
        """The next n samples of the mix (a view of an internal buffer: copy it to keep it)."""
        self._apply_messages()
        if len(self._buf) < n:
            self._alloc(n)
        out = self._buf[:n]
        out.fill(0.0)
        start, end = self.position, self.position + n
        self._start_voice(end)
        keep = []
        for src in self._sources:
            s0, arr = src[0], src[1]
            if s0 >= end:
                keep.append(src)
                continue
            a = s0 - start if s0 > start else 0  # where it begins in this block
            off = start - s0 if s0 < start else 0  # how much of it has played
            count = min(n - a, len(arr) - off)
            if count > 0:
                out[a:a + count] += arr[off:off + count]
            if off + count < len(arr):
                keep.append(src)
        self._sources = keep
        self._apply_gain(out, start, end)
        np.clip(out, -1.0, 1.0, out=out)
        self.peak = max(self.peak * 0.9, float(out.max()), -float(out.min())) if n else self.peak
        self.position = end
        return out

    def _apply_gain(self, out: np.ndarray, start: int, end: int) -> None:
        """Fade gain × master volume, both as linear ramps across the block (no clicks)."""
        n = end - start
        ramp = self._ramp[:n]
        idx = self._idx[:n]
        if self._fade is not None:
            fa, fb, g0, g1 = self._fade
            # gain at sample i: g0 + (g1 - g0) * clip((start + i - fa) / (fb - fa), 0, 1)
            length = max(1, fb - fa)
            np.add(idx, float(start - fa), out=ramp)
            ramp *= 1.0 / length
            np.clip(ramp, 0.0, 1.0, out=ramp)
            ramp *= g1 - g0
            ramp += g0
            if end >= fb:
                self._gain = g1
                self._fade = None
        else:
            ramp.fill(self._gain)
        # master volume glides from its last value to the new one across this block (21 ms)
        v0, v1 = self._vol, min(1.0, max(0.0, float(self.volume)))
        if v0 == v1:
            ramp *= v0
        else:
            vol = self._volbuf[:n]
            np.multiply(idx, (v1 - v0) / n, out=vol)
            vol += v0
            ramp *= vol
        self._vol = float(v1)
        out *= ramp
        if self._fade is None and self._gain == 0.0:
            # faded out (panic ended, blackout): what was playing or waiting is over
            if self._sources or self._voice_line:
                self._sources.clear()
                self._drop_voice(stop_current=True)



class WavTap:
    """Writes the mix to a 16-bit stereo WAV on its own thread.

    `write` copies the block into a preallocated ring slot (no allocation in the audio callback);
    if the writer falls a whole ring behind, blocks are dropped and counted. A write that fails (a
    full disk, a read-only or vanished folder) stops the recording with one log line; the mix, the
    device and the show go on, `write` then costs nothing, and at close the file's header is made to
    match what reached the disk, so the WAV so far stays playable.
    """

    SLOTS = 512  # ~11 s of 1024-sample blocks

    def __init__(self, path: Path, rate: int) -> None:
        self.path = path
        self.rate = rate
        self.frames = 0
        self.dropped = 0
        self.error: str | None = None
        self._w = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._w = wave.open(str(path), "wb")
            self._w.setnchannels(2)
            self._w.setsampwidth(2)
            self._w.setframerate(rate)
        except OSError as e:
            self._stop(e)
        self._ring = np.zeros((self.SLOTS, BLOCK), np.float32)
        self._next = 0
        self._free = threading.Semaphore(self.SLOTS)
        self._q: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self._t = threading.Thread(target=self._run, name="lectern-wav", daemon=True)
        self._t.start()

    def _stop(self, e: OSError) -> None:
        """The one line a failed recording gets; later failures (closing, say) add none."""
        if self.error is None:
            self.error = e.strerror or str(e)
            log.error("recording the mix to %s stopped: %s (%.1f s written); the show goes on",
                      self.path, self.error, self.frames / self.rate)

    def write(self, block: np.ndarray) -> None:
        if self.error is not None:
            return
        for a in range(0, len(block), BLOCK):
            part = block[a:a + BLOCK]
            if not self._free.acquire(blocking=False):
                self.dropped += 1
                continue
            slot = self._next
            self._next = (slot + 1) % self.SLOTS
            self._ring[slot, :len(part)] = part
            self._q.put((slot, len(part)))

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            slot, n = item
            if self.error is not None:  # stopped: blocks still queued are let go
                self._free.release()
                continue
            pcm = (np.clip(self._ring[slot, :n], -1, 1) * 32767).astype(np.int16)
            self._free.release()
            try:
                self._w.writeframes(np.repeat(pcm, 2).tobytes())
            except OSError as e:
                self._stop(e)
                continue
            self.frames += n

    def close(self, end_frames: int | None = None) -> None:
        """Finish the file; with `end_frames`, cut it to exactly that many frames."""
        self._q.put(None)
        self._t.join(30)
        if self._w is not None:
            try:
                self._w.close()
            except OSError as e:
                self._stop(e)
        if self.error is not None:
            self._fit_header()
            return
        if end_frames is not None and self.frames > end_frames:
            _truncate_wav(self.path, end_frames)
            self.frames = end_frames

    def _fit_header(self) -> None:
        """After a failed write: the header says as many whole frames as the file holds (the
        header is rewritten in place, which needs no free space)."""
        try:
            size = self.path.stat().st_size
            if size >= 44:
                self.frames = (size - 44) // 4
                _truncate_wav(self.path, self.frames)
        except OSError:
            pass


def _truncate_wav(path: Path, frames: int) -> None:
    """Cut a 16-bit stereo PCM WAV written by `wave` (44-byte header) to `frames` frames."""
    data = frames * 4
    with open(path, "r+b") as f:
        f.seek(4)
        f.write(struct.pack("<I", 36 + data))
        f.seek(40)
        f.write(struct.pack("<I", data))
        f.truncate(44 + data)


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
        self.resyncs = 0
        self.device_losses = 0
        self._latency = 0.0
        self._lock = threading.Lock()  # one renderer at a time: the callback or the null sink
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lectern-audio", daemon=True)
        self._last_try = 0.0
        self._tried = False
        self._dead = False  # set by the callback when the stream reports it cannot go on

    def start(self) -> None:
        if self.want_device:
            self._open_device()
        self._thread.start()

    # ---- device ---------------------------------------------------------------------------------
    def _open_device(self) -> None:
        self._last_try = time.monotonic()
        first = not self._tried
        self._tried = True
        if faults.active("audio_device_lost"):
            if first:
                log.warning("no audio device (fault injected); running on a null sink")
            return
        try:
            # lazy: the device library loads only when the device is opened; a machine without it plays on without this part
            import sounddevice as sd

            dev = int(self.device) if isinstance(self.device, str) and self.device.isdigit() else self.device
            info = sd.query_devices(dev, "output")
            channels = max(1, min(2, int(info["max_output_channels"])))
            stream = sd.OutputStream(samplerate=self.mixer.rate, channels=channels, dtype="float32",
                                     blocksize=BLOCK, device=dev, callback=self._callback)
            self._latency = float(stream.latency)
            self._dead = False
            with self._lock:  # catch the mix up to now before the device takes over
                self._render_to(self.clock.now())
            stream.start()
            self.stream = stream
            self.device_name = str(info["name"])
            log.info("audio on %s (latency %.0f ms)", self.device_name, 1000 * self._latency)
        except Exception as e:  # no device is not a reason to stop the show
            if first:
                log.warning("no audio device (%s); running on a null sink", e)
            self.stream = None
            self.device_name = "null"

    def _close_stream(self) -> None:
        stream, self.stream = self.stream, None
        self.device_name = "null"
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:
                pass

    def _callback(self, outdata, frames, time_info, status) -> None:
        if status.output_underflow:
            self.underruns += 1
        # the first sample of this buffer is heard about `latency` from now: that is its engine time
        target = int((self.clock.now() + self._latency) * self.mixer.rate)
        slack = SLACK_BLOCKS * BLOCK
        with self._lock:
            pos = self.mixer.position
            if pos > target + slack:  # the device runs ahead of the engine clock: let the clock catch up
                outdata.fill(0.0)
                return
            if pos < target - slack:  # behind: render the gap to the tap only, so the WAV stays whole
                self.resyncs += 1
                self._render_to(min(target, pos + 8 * BLOCK) / self.mixer.rate)
            block = self.mixer.render(frames)
            if self.tap is not None:
                self.tap.write(block)
        outdata[:] = block[:, None]

    # ---- null sink ------------------------------------------------------------------------------
    def _render_to(self, t: float) -> None:
        """Render (caller holds the lock) everything before engine time t to the tap."""
        target = int(t * self.mixer.rate)
        while self.mixer.position < target:
            block = self.mixer.render(min(BLOCK, target - self.mixer.position))
            if self.tap is not None:
                self.tap.write(block)

    def render_until(self, t: float) -> None:
        """Render everything before engine time t (the null sink's step; tests call it on a FakeClock)."""
        with self._lock:
            self._render_to(t)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self._tick()
            except Exception:  # the audio owner must outlive any one fault
                log.exception("audio tick failed")

    def _tick(self) -> None:
        if self.stream is not None:
            lost = faults.active("audio_device_lost") or not self.stream.active
            if lost:
                log.warning("audio device %s lost; continuing on a null sink", self.device_name)
                self.device_losses += 1
                self._close_stream()
                self._last_try = time.monotonic()
            else:
                return
        self.render_until(self.clock.now())
        if self.want_device and time.monotonic() - self._last_try > RETRY_S:
            self._open_device()

    def close(self) -> int:
        """Stop; render the mix up to the engine's now. Returns the engine time in samples."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self._close_stream()
        end = int(self.clock.now() * self.mixer.rate)
        self.render_until(self.clock.now())
        return end
