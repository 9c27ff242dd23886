"""Voice and sonification on one audio path. The engine talks to `SoundSystem`; every call
returns at once (work happens on the speech worker, the mixer's owner and the WAV writer)."""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from performance.sound.audio import Mixer, Output, WavTap
from performance.sound.settings import SonifySettings, VoiceSettings
from performance.sound.sonify import Sonifier

log = logging.getLogger("lectern.sound")
__all__ = ["SonifySettings", "SoundSystem", "SpeechEvent", "Utterance", "VoiceSettings"]


@dataclass(frozen=True)
class Utterance:
    id: int
    poem: int
    line: int
    text: str
    settings: VoiceSettings
    temperature: float


@dataclass(frozen=True)
class SpeechEvent:
    """An utterance's place in the mix, in engine seconds."""

    id: int
    poem: int
    line: int
    start: float
    end: float


class SoundSystem:
    """Owns the mixer, the output, the speech worker and the sonifier."""

    def __init__(self, clock, *, device: str | int | None = None, audio_out: Path | None = None,
                 null_sink: bool = False, sample_rate: int = 48000, speech: bool = True) -> None:
        self.clock = clock
        self.rate = sample_rate
        self.mixer = Mixer(sample_rate)
        self.tap = WavTap(Path(audio_out), sample_rate) if audio_out else None
        self.output = Output(self.mixer, clock, device=device, want_device=not null_sink, tap=self.tap)
        self.sonifier = Sonifier(sample_rate)
        self._events: queue.SimpleQueue[SpeechEvent] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._voice_free = 0  # sample where the voice is free again
        self._waiting = 0  # submitted, not yet in the mix
        self._last_poem: int | None = None
        self._speech_enabled = speech
        self.worker = None
        if speech:
            from performance.sound.voice import SpeechWorker

            self.worker = SpeechWorker(self._on_audio, rate=sample_rate)

    # ---- life ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.output.start()
        if self.worker is not None:
            self.worker.start()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.output.close()
        if self.tap is not None:
            self.tap.close()

    # ---- speech -------------------------------------------------------------------------------
    def speak(self, u: Utterance) -> None:
        if self.worker is None or not u.text.strip():
            return
        s = u.settings
        with self._lock:
            if s.when_behind == "skip" and self._waiting >= s.queue:
                dropped = self.worker.cancel_waiting()  # drop what waits: speak the newest
                self._waiting -= dropped
                if dropped:
                    log.info("speech behind the text: skipped %d line(s)", dropped)
            self._waiting += 1
        self.worker.submit({"text": u.text, "voice": s.voice, "rate": s.rate_at(u.temperature), "pitch": s.pitch,
                            "volume": s.volume, "utt": u})

    def _on_audio(self, job: dict, samples: np.ndarray | None, engine: str | None) -> None:
        u: Utterance = job["utt"]
        with self._lock:
            self._waiting = max(0, self._waiting - 1)
            if samples is None or not len(samples):
                return
            now = int(self.clock.now() * self.rate)
            gap = u.settings.stanza_pause if (self._last_poem is not None and u.poem != self._last_poem) else u.settings.line_pause
            start = max(now, self._voice_free + int(gap * self.rate) if self._voice_free > now else now)
            self._voice_free = start + len(samples)
            self._last_poem = u.poem
        self.mixer.schedule(start, samples)
        self._events.put(SpeechEvent(u.id, u.poem, u.line, start / self.rate, (start + len(samples)) / self.rate))

    def cancel_speech(self) -> None:
        if self.worker is not None:
            with self._lock:
                self._waiting -= self.worker.cancel_waiting()
                self._waiting = max(0, self._waiting)

    def poll(self) -> list[SpeechEvent]:
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def speech_backlog(self) -> int:
        """Utterances waiting or playing."""
        playing = 1 if self._voice_free > int(self.clock.now() * self.rate) else 0
        return self._waiting + playing

    def speaking(self) -> bool:
        return self.speech_backlog() > 0

    # ---- sonification -------------------------------------------------------------------------
    def sonify(self, text: str, p: float, temperature: float, settings: SonifySettings, at: float) -> None:
        grain, _ = self.sonifier.grain(text, p, temperature, settings)
        self.mixer.schedule(int(at * self.rate), grain)

    # ---- master -------------------------------------------------------------------------------
    def set_volume(self, v: float) -> None:
        self.mixer.volume = min(1.0, max(0.0, v))

    def panic(self, fade_s: float) -> None:
        self.cancel_speech()
        self.mixer.fade_to(0.0, fade_s)

    def blackout(self) -> None:
        self.mixer.fade_to(0.0, 0.0)

    def resume(self) -> None:
        self.mixer.fade_to(1.0, 0.3)

    def health(self) -> dict:
        return {"device": self.output.device_name,
                "speech_engine": (self.worker.engine_used if self.worker else None) or "pyttsx3",
                "speech_restarts": self.worker.restarts if self.worker else 0, "underruns": self.output.underruns}
