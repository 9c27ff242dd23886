"""Live recording: the stage's frames go to ffmpeg through a bounded queue on the recorder's thread.

The frame loop only copies the surface (about a millisecond at 1080p) for each tick of the
recording's frame rate on the engine clock. The thread turns copies into bytes and feeds ffmpeg;
ticks the stage could not deliver in time are filled with the previous frame (picture and sound
stay in sync) and counted as dropped. During the session the video goes to a Matroska file that
stays playable if the process is killed; `close` muxes it with the audio mix into the final MP4.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from performance.media import MediaError, encoder, encoder_said, mux, pix_fmt_of, raw_bytes

log = logging.getLogger("lectern.recorder")
# copies of 1080p surfaces are 8 MB each: bound those; repeats of an unchanged picture cost nothing
# to queue, so the queue itself may hold many seconds of them and ride out a busy moment
QUEUE_FRAMES = 12
QUEUE_SECONDS = 10


class Recorder:
    def __init__(self, path: Path, size: tuple[int, int], fps: int = 30, clock=None, audio: Path | None = None) -> None:
        self.path = Path(path)
        self.size = size
        self.fps = fps
        self.clock = clock
        self.audio = audio
        self.partial = self.path.with_name(self.path.stem + ".partial.mkv")
        self.dropped = 0
        self.frames_written = 0
        self._last_tick = -1
        self._q: queue.Queue = queue.Queue(maxsize=QUEUE_SECONDS * fps)
        self._copies = threading.BoundedSemaphore(QUEUE_FRAMES)
        self._proc = None
        self._thread = threading.Thread(target=self._run, name="lectern-recorder", daemon=True)
        self._fmt: tuple[str, bool] | None = None
        self.error: str | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def frame(self, surface, now: float, changed: bool = True) -> None:
        """Offer the frame just presented at engine time `now`. When the picture did not change
        since the last offered frame, nothing is copied: the thread repeats the previous bytes."""
        tick = int(now * self.fps + 1e-6)
        if tick <= self._last_tick or self.error:
            return
        if not changed and self._fmt is not None:
            try:
                self._q.put_nowait((tick, None))
                self._last_tick = tick
            except queue.Full:
                pass
            return
        if self._fmt is None:
            self._fmt = pix_fmt_of(surface)
            try:
                self._proc = encoder(self.partial, self.size, self.fps, self._fmt[0], ["-f", "matroska"])
            except MediaError as e:
                self.error = str(e)
                log.error("recording off: %s", e)
                return
            self._thread.start()
        if surface.get_size() != self.size:  # the stage went fullscreen or back: the video keeps its size
            # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
            import pygame

            surface = pygame.transform.smoothscale(surface, self.size)
        if not self._copies.acquire(blocking=False):
            return  # the thread is behind: this tick will be filled by a repeat and counted
        try:
            self._q.put_nowait((tick, surface.copy()))
            self._last_tick = tick
        except queue.Full:
            self._copies.release()

    def _run(self) -> None:
        prev: bytes | None = None
        written = -1
        assert self._proc is not None and self._proc.stdin is not None and self._fmt is not None
        while True:
            item = self._q.get()
            if item is None:
                break
            tick, surf = item
            if surf is not None:
                data = raw_bytes(surf, self._fmt[1])
                del surf
                self._copies.release()
            else:
                data = prev
            if data is None:
                continue
            try:
                # before the first frame the stage was still starting: show that frame from t = 0
                for _ in range(written + 1, tick):
                    self._proc.stdin.write(prev if prev is not None else data)
                    self.frames_written += 1
                    if prev is not None:
                        self.dropped += 1
                self._proc.stdin.write(data)
                self.frames_written += 1
            except (BrokenPipeError, OSError) as e:
                self.error = f"ffmpeg stopped: {self._why(e)}"
                log.error("recording %s stopped: %s; the video so far is in %s; the show goes on",
                          self.path, self.error, self.partial)
                return
            prev, written = data, tick
        self._prev, self._written = prev, written

    def _why(self, e: OSError) -> str:
        """What ffmpeg said when it went (a full disk: "No space left on device"), in one line."""
        said = ""
        try:
            self._proc.wait(5)
            said = encoder_said(self._proc)
        except Exception:
            pass
        lines = [ln.strip() for ln in said.splitlines() if ln.strip()]
        why = next((ln for ln in lines if "No space left" in ln or "Read-only" in ln or "Permission denied" in ln),
                   lines[-1] if lines else str(e))
        return " ".join(why.split())[:200]

    def close(self, end: float | None = None) -> Path | None:
        """Finish: fill up to the session's end, finish the MKV, mux the MP4. Returns the MP4 path."""
        if self._proc is None:
            return None
        try:
            # a thread stopped by a broken pipe no longer drains the queue: never wait on it forever
            self._q.put(None, timeout=60 if self._thread.is_alive() else 0.01)
        except queue.Full:
            pass
        self._thread.join(60)
        prev, written = getattr(self, "_prev", None), getattr(self, "_written", -1)
        if end is not None and prev is not None and self._proc.stdin is not None:
            try:
                for _ in range(written + 1, int(end * self.fps + 1e-6) + 1):
                    self._proc.stdin.write(prev)
                    self.frames_written += 1
            except (BrokenPipeError, OSError):
                pass
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        self._proc.wait(120)
        try:
            mux(self.partial, self.audio, self.path, duration=self.frames_written / self.fps)
            self.partial.unlink(missing_ok=True)
        except MediaError as e:
            if self.error:  # already said in its one line; the file so far is where that line says
                log.info("recording %s not finished after it stopped (%s)", self.path, " ".join(str(e).split())[-200:])
            else:
                log.error("%s (the video is still in %s)", " ".join(str(e).split()), self.partial)
            return None
        return self.path
