"""Voice and sonification on one audio path. The engine talks to `SoundSystem`; every call
returns at once (the work happens on the voice thread, the speech worker process, the audio owner
and the WAV writer).

Modules: settings (the scene's [voice] and [sonify] tables), sonify (tokens into cached grains),
voice (the parent side of the speech worker) and speech_worker (the process: Piper, pyttsx3,
espeak-ng), piper_voice (a Piper voice, its word alignments), speakable (text as it is read),
timing (word times from the audio), audio (mixer on the engine clock, device or null sink, WAV tap).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from performance.show.sound_settings import SonifySettings, VoiceSettings
from performance.sound.audio import Mixer, Output, WavTap
from performance.sound.sonify import Sonifier
from performance.sound.voice import SpeechWorker

log = logging.getLogger("lectern.sound")
__all__ = ["SonifySettings", "SoundSystem", "SpeechEvent", "Utterance", "VoiceSettings"]

PREFETCH = 1  # rendered utterances lined up in the mix ahead of the one playing (gapless, still skippable)
HOLD_CAP = 200  # under "hold" the engine stops the stage; this only bounds memory if it does not
AHEAD_KEEP = 8  # lines written but not yet revealed that may wait to be synthesised ahead
READY_KEEP = 32  # lines synthesised ahead, waiting for their turn (keyed by what was asked)
PANIC_CLICK_S = 0.005  # blackout is "instant" but still a ramp: a hard cut clicks


@dataclass(frozen=True)
class Utterance:
    """One line (or text) to speak; `poem`/`line` come back in its SpeechEvent."""

    id: int
    poem: int
    line: int
    text: str
    settings: VoiceSettings
    temperature: float
    stanza: bool = False  # a stanza begins with it: the stanza pause comes before it


@dataclass(frozen=True)
class SpeechEvent:
    """Where an utterance lies in the mix, in engine seconds: [start, end); `words` holds
    (stage word index, start, end) in engine seconds, `engine` what spoke, `voice` the settings
    it was spoken with (enough to speak it again the same way)."""

    id: int
    poem: int
    line: int
    start: float
    end: float
    words: tuple[tuple[int, float, float], ...] = ()
    engine: str | None = None
    voice: dict = field(default_factory=dict)


class SoundSystem:
    """Owns the mixer, the output (device or null sink), the WAV tap, the voice and the sonifier.

    clock: the engine clock (`now()` in engine seconds); sample k of the mix is engine time k/rate.
    device: a sounddevice name or index (None = the default device); null_sink: never open a
    device (headless); audio_out: write the mix to this WAV; speech: start the speech worker.
    """

    def __init__(self, clock, *, device: str | int | None = None, audio_out: Path | None = None,
                 null_sink: bool = False, sample_rate: int = 48000, speech: bool = True,
                 preload_voice: str = "") -> None:
        self.clock = clock
        self.rate = sample_rate
        self.mixer = Mixer(sample_rate)
        self.tap = WavTap(Path(audio_out), sample_rate) if audio_out else None
        self.output = Output(self.mixer, clock, device=device, want_device=not null_sink, tap=self.tap)
        self.sonifier = Sonifier(sample_rate)
        self.worker = None
        if speech:
            self.worker = SpeechWorker(lambda job, samples, engine: None, rate=sample_rate)
            self.worker.preload = preload_voice if preload_voice.startswith("piper:") else ""
        self.override: dict = {}  # the voice chosen live (voice/name, voice/rate, voice/variation)
        self._cond = threading.Condition()
        self._pending: deque[Utterance] = deque()  # waiting to be rendered
        self._ahead: deque[Utterance] = deque(maxlen=AHEAD_KEEP)  # written, not yet revealed: render when idle
        self._ready: OrderedDict[str, object] = OrderedDict()  # job → Rendered, synthesised ahead
        self.ahead_hits = 0
        self._rendering = 0  # 1 while the worker renders a line
        self._generation = 0  # bumped by cancel: a line rendered for an older generation is dropped
        self._last_poem: int | None = None
        self._last_line = VoiceSettings()  # the settings and text of the line spoken last (its pause)
        self._last_text = ""
        self._closing = False
        self._started = False
        self.skipped = 0
        self._voice_thread = threading.Thread(target=self._voice_loop, name="lectern-voice", daemon=True)

    # ---- life ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the device (or the null sink) and start the speech worker."""
        self._started = True
        self.output.start()
        if self.worker is not None:
            self.worker.start(thread=False)
            self._voice_thread.start()

    def render_until(self, t: float) -> None:
        """Render the mix up to engine time t now (the null sink does this by itself; for tests)."""
        self.output.render_until(t)

    def close(self) -> None:
        """Stop everything; the WAV ends exactly at the engine's now."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self.worker is not None:
            if self._voice_thread.is_alive():
                self._voice_thread.join(0.5)
            self.worker.close()
        end = self.output.close() if self._started else int(self.clock.now() * self.rate)
        if self.tap is not None:
            if not self._started:
                self.output.render_until(self.clock.now())
            self.tap.close(end_frames=end)

    # ---- speech -------------------------------------------------------------------------------
    def speak(self, u: Utterance) -> None:
        """Queue a line. Under "skip", the oldest waiting lines make room for it."""
        if self.worker is None or not u.text.strip() or u.settings.mode == "off":
            return
        s = u.settings
        with self._cond:
            limit = s.queue if s.when_behind == "skip" else HOLD_CAP
            while self._pending and len(self._pending) + self._rendering + self.mixer.voice_waiting() >= limit:
                self._pending.popleft()
                self.skipped += 1
            self._pending.append(u)
            self._cond.notify()

    def prepare(self, line: int, text: str, settings: VoiceSettings, temperature: float) -> None:
        """A line written but not yet shown: synthesise it while nothing else waits, so it sounds
        the moment its Speak comes."""
        if self.worker is None or not text.strip() or settings.mode == "off":
            return
        with self._cond:
            self._ahead.append(Utterance(0, -1, line, text, settings, temperature))
            self._cond.notify()

    def _render(self, job: dict):
        try:
            return self.worker.render_timed(job)
        except Exception:  # the voice must outlive any one line
            log.exception("speech render failed")
            return None

    def _render_ahead(self) -> None:
        with self._cond:
            u = self._ahead.popleft()
        job = self.job_for(u)
        key = json.dumps(job, sort_keys=True)
        if key in self._ready:
            return
        r = self._render(job)
        if r is not None and r.samples is not None:
            with self._cond:
                self._ready[key] = r
                while len(self._ready) > READY_KEEP:
                    self._ready.popitem(last=False)

    def _due(self) -> bool:
        """A line waits and the voice track has room for it."""
        return bool(self._pending) and self.mixer.voice_waiting() < PREFETCH

    def _voice_loop(self) -> None:
        """Render lines one at a time, just ahead of the voice, so skipping stays possible; when no
        line is due, synthesise the lines written ahead of the stage."""
        assert self.worker is not None
        while True:
            with self._cond:
                while not self._closing and not self._due() and not self._ahead:
                    # the mixer runs in the audio callback and does not notify: look again shortly
                    self._cond.wait(0.02)
                if self._closing:
                    return
                ahead = not self._due()
                if not ahead:
                    u = self._pending.popleft()
                    self._rendering = 1
                    generation = self._generation
            if ahead:
                self._render_ahead()
                continue
            job = self.job_for(u)
            with self._cond:
                r = self._ready.pop(json.dumps(job, sort_keys=True), None)
            self.ahead_hits += r is not None
            if r is None:
                r = self._render(job)
            with self._cond:
                self._rendering = 0
                if r is None or r.samples is None or not len(r.samples) or generation != self._generation:
                    continue
                same_poem = self._last_poem is not None and u.poem == self._last_poem
                gap = 0.0 if self._last_poem is None else self._last_line.gap_after(self._last_text,
                                                                                     same_poem and not u.stanza)
                self._last_poem, self._last_line, self._last_text = u.poem, u.settings, u.text
                self.mixer.queue_voice((u, r, job), r.samples, gap)

    def job_for(self, u: Utterance) -> dict:
        """What the worker is asked to speak for an utterance (the scene's voice, as changed live)."""
        s = replace(u.settings, **self.override) if self.override else u.settings
        return {"text": u.text, "voice": s.voice, "rate": s.rate_at(u.temperature), "pitch": s.pitch,
                "volume": s.volume, "length_scale": round(s.length_for(u.line), 4),
                "variation": round(s.variation, 4), "emphasis": list(s.emphasis)}

    def set_voice(self, **changes) -> None:
        """Change the voice live (voice, length_scale, variation); a None value releases it."""
        for k, v in changes.items():
            if v is None or v == "":
                self.override.pop(k, None)
            else:
                self.override[k] = v
        if "voice" in changes and str(changes["voice"] or "").startswith("piper:") and self.worker is not None:
            self.worker.preload = changes["voice"]  # a restarted worker loads it as it starts

    def cancel_speech(self) -> None:
        """Drop every line waiting (scene change, panic); the one playing finishes."""
        with self._cond:
            self._pending.clear()
            self._generation += 1
            self.mixer.cancel_voice()

    def poll(self) -> list[SpeechEvent]:
        """SpeechEvents for utterances that started in the mix since the last poll."""
        out = []
        while True:
            try:
                (u, r, job), start, end = self.mixer.started.get_nowait()
            except queue.Empty:
                return out
            t0 = start / self.rate
            words = tuple((k, round(t0 + a, 4), round(t0 + b, 4)) for k, a, b in r.words)
            voice = {k: v for k, v in job.items() if k != "text"}
            out.append(SpeechEvent(u.id, u.poem, u.line, t0, end / self.rate, words, r.engine, voice))

    def speech_backlog(self) -> int:
        """Utterances waiting, being rendered or playing."""
        playing = 1 if self.mixer.voice_playing() else 0
        return len(self._pending) + self._rendering + self.mixer.voice_waiting() + playing

    def speaking(self) -> bool:
        """True while any line waits or plays (a pause that waits for the voice uses this)."""
        return self.speech_backlog() > 0

    # ---- sonification -------------------------------------------------------------------------
    def sonify(self, text: str, p: float, temperature: float, settings: SonifySettings, at: float) -> None:
        """Sound a token revealed at engine time `at` (a cached grain; a dict lookup when warm)."""
        if not settings.enabled or not text.strip():
            return
        grain, _ = self.sonifier.grain(text, p, temperature, settings)
        self.mixer.schedule(int(at * self.rate), grain)

    # ---- master -------------------------------------------------------------------------------
    def set_volume(self, v: float) -> None:
        """Master volume 0..1 (glides over one block)."""
        self.mixer.volume = min(1.0, max(0.0, float(v)))

    def panic(self, fade_s: float) -> None:
        """Drop waiting speech and fade everything to silence over fade_s; stays silent until resume."""
        self.cancel_speech()
        self.mixer.fade_to(0.0, max(PANIC_CLICK_S, fade_s))

    def blackout(self) -> None:
        """Silence now (a 5 ms ramp); waiting speech is dropped."""
        self.cancel_speech()
        self.mixer.fade_to(0.0, PANIC_CLICK_S)

    def resume(self) -> None:
        """Sound again after panic or blackout."""
        self.mixer.fade_to(1.0, 0.3)

    def health(self) -> dict:
        """{"device", "speech_engine", "speech_restarts", "underruns", ...} for status and tests."""
        w = self.worker
        return {"device": self.output.device_name,
                "speech_engine": (w.engine_used if w else None) or ("pyttsx3" if w else None),
                "speech_restarts": w.restarts if w else 0, "underruns": self.output.underruns,
                "device_losses": self.output.device_losses, "resyncs": self.output.resyncs,
                "speech_skipped": self.skipped, "wav_dropped": self.tap.dropped if self.tap else 0}
