"""Tempo: a scene paced in beats follows the shared timeline (Ableton Link, MIDI clock).

Clock adapters send `TempoState` (beat `beat` falls at engine time `at`, at `bpm`) and `TempoGone`
into the inbox. While a fresh timeline is heard, a beat-paced scene (show/beats.py) reveals each
word (or char) on its slot of the beat grid, starts poems on the next beat or bar and holds and
pauses for a number of beats; the times are pure functions of the last timeline, so fake-clock
tests assert exact word times. A tempo change moves the deadlines still ahead to the same beats
on the new timeline. A transport that stops holds the scene; when it starts again the scene goes
on. When the timeline goes (TempoGone, or nothing heard for TEMPO_STALE_S), the scene falls back
to its pacing in seconds and says so once (a `tempo_lost` event, a log line and the notice).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from performance.engine.state import _Column
from performance.protocol.actions import Outbox
from performance.protocol.tempo import TempoGone, TempoState
from performance.show.config import Scene

log = logging.getLogger("lectern.engine")

TEMPO_STALE_S = 1.5  # a timeline not refreshed for this long is gone (adapters refresh it 4+ times a second)
EPS_BEATS = 1e-6  # a time this close to a grid slot is on it (float sums of beat lengths)


class TempoMixin:
    """The Engine's tempo concern (state lives on the Engine; see core.py)."""

    scene: Scene
    columns: list[_Column]
    _out: Outbox
    tempo: TempoState | None = None  # the timeline heard last (None: none, or gone)
    _tempo_heard = 0.0  # when it was heard
    _transport_stop: float | None = None  # when the shared transport stopped (a beat scene holds)
    _tempo_gone_said: str | None = None  # the source whose loss was said (said once per loss)

    # ---- messages ---------------------------------------------------------------------------------
    def _tempo_message(self, now: float, msg: Any) -> None:
        if isinstance(msg, TempoGone):
            if self.tempo is not None and msg.source == self.tempo.source:
                self._tempo_lose(now, msg.reason)
            return
        old = self.tempo
        if old is not None and old.source != msg.source and now - self._tempo_heard < TEMPO_STALE_S:
            return  # Link first: a MIDI clock heard beside a live Link session is not followed
        self.tempo, self._tempo_heard = msg, now
        if old is None or old.source != msg.source or abs(old.bpm - msg.bpm) >= 0.05:
            self._emit(now, "tempo", source=msg.source, bpm=round(msg.bpm, 3), beat=round(msg.beat_at(now), 4),
                       peers=msg.peers, playing=msg.playing)
        if old is None:
            if self._tempo_gone_said is not None:
                log.warning("tempo: %s heard again (%.1f BPM): pacing in beats", msg.source, msg.bpm)
                if self.notice and self.notice.startswith("tempo:"):
                    self.notice = None
            self._tempo_gone_said = None
        elif self._beat_scene():
            self._retime(now, old, msg)
        self._transport(now, old, msg)

    def _tempo_check(self, now: float) -> None:
        """A timeline nobody refreshed is gone (the adapter's thread died, the clock stopped coming)."""
        if self.tempo is not None and now - self._tempo_heard > TEMPO_STALE_S:
            self._tempo_lose(self._tempo_heard + TEMPO_STALE_S,
                             f"no {self.tempo.source} tempo heard for {TEMPO_STALE_S:g} s")

    def _tempo_lose(self, t: float, reason: str) -> None:
        tl, self.tempo = self.tempo, None
        if tl is None:
            return
        self._transport_go_on(t)
        beats = self.scene.pacing.beats
        self._emit(t, "tempo_lost", source=tl.source, reason=reason, bpm=round(tl.bpm, 3))
        if self._tempo_gone_said != tl.source:  # once per loss: a flapping session is not a flood
            self._tempo_gone_said = tl.source
            fallback = f" ({beats.bpm:g} BPM)" if beats is not None else ""
            log.warning("tempo: %s gone (%s): pacing in seconds%s", tl.source, reason, fallback)
            if beats is not None:
                self.notice = f"tempo: {tl.source} gone ({reason}): pacing in seconds{fallback}"

    def _transport(self, now: float, old: TempoState | None, msg: TempoState) -> None:
        """Follow the session's start/stop: a stop holds a beat scene, a start lets it go on."""
        if msg.playing is False and (old is not None and old.playing) and self._transport_stop is None:
            self._transport_stop = now
            self._emit(now, "transport", source=msg.source, playing=False)
        elif msg.playing and self._transport_stop is not None:
            self._emit(now, "transport", source=msg.source, playing=True)
            self._transport_go_on(now)

    def _transport_go_on(self, now: float) -> None:
        if self._transport_stop is not None:
            stopped, self._transport_stop = self._transport_stop, None
            if self._beat_scene():  # as a resume: every deadline moves by the time stopped (a pause
                # that overlaps the stop moves them by its own part when it resumes)
                until = min(now, self.paused_at) if self.paused else now
                self._shift(max(0.0, until - stopped))

    def _held_by_transport(self) -> bool:
        """The shared transport is stopped and the scene on stage paces in beats: it waits."""
        return self._transport_stop is not None and self._beat_scene()

    # ---- beats to times ---------------------------------------------------------------------------
    def _beat_scene(self) -> bool:
        return self.scene.pacing.beats is not None

    def _live_beats(self) -> tuple[Any, TempoState] | None:
        """(the scene's BeatPacing, the timeline) while a beat scene hears a tempo; else None."""
        beats = self.scene.pacing.beats
        if beats is None or self.tempo is None:
            return None
        return beats, self.tempo

    def _paced(self, units: float, rate: float) -> float:
        """Seconds `units` words (or chars) take: on the beat grid while a tempo is heard."""
        live = self._live_beats()
        if live is None or live[0].unit_beats is None:
            return units / rate
        return units * live[0].unit_beats * 60.0 / live[1].bpm

    def _on_grid(self, t: float) -> float:
        """A reveal moment moved to the unit's next slot on the beat grid (a late token waits for it)."""
        live = self._live_beats()
        if live is None or live[0].unit_beats is None:
            return t
        return self._snap(t, live[0].unit_beats, live[1])

    def _start_on_grid(self, t: float) -> float:
        """A poem's start moved to the next beat or bar (start = "beat" | "bar")."""
        live = self._live_beats()
        if live is None or not live[0].start_beats:
            return t
        return self._snap(t, live[0].start_beats, live[1])

    @staticmethod
    def _snap(t: float, step: float, tl: TempoState) -> float:
        slot = math.ceil(tl.beat_at(t) / step - EPS_BEATS) * step
        return max(t, round(tl.time_of(slot), 9))

    def _hold_s(self) -> float:
        """The hold after a poem: hold_beats on the timeline when one is heard, else hold seconds."""
        live = self._live_beats()
        if live is not None and live[0].hold_beats is not None:
            return live[0].hold_beats * 60.0 / live[1].bpm
        return self.scene.pacing.hold / self.speed

    def _pause_s(self) -> float:
        live = self._live_beats()
        if live is not None and live[0].pause_beats is not None:
            return live[0].pause_beats * 60.0 / live[1].bpm
        return self.scene.pacing.pause_seconds

    def _retime(self, now: float, old: TempoState, new: TempoState) -> None:
        """A tempo change: every deadline still ahead falls on the same beat of the new timeline."""
        def move(t: float) -> float:
            return round(new.time_of(old.beat_at(t)), 9) if t > now else t

        for col in self.columns:
            col.until, col.start_at = move(col.until), move(col.start_at)
            for poem in (col.poem, *col.ahead):
                if poem is not None and poem.started:
                    poem.deadline = move(poem.deadline)

    # ---- the Snapshot -----------------------------------------------------------------------------
    def tempo_report(self) -> dict[str, Any]:
        """The operator view's tempo line: source, BPM, bar and beat, peers (or the fallback)."""
        tl, beats = self.tempo, self.scene.pacing.beats
        if tl is None:
            if beats is None:
                return {"tempo": ""}
            return {"tempo": f"no Link or MIDI clock: pacing in seconds ({beats.bpm:g} BPM)"}
        per_bar = beats.beats_per_bar if beats is not None else max(1, round(tl.quantum))
        b = tl.beat_at(self._now)
        bar, beat = int(b // per_bar) + 1, int(b % per_bar) + 1
        peers = f" · {tl.peers} peer{'s' if tl.peers != 1 else ''}" if tl.source == "link" else ""
        stopped = " · stopped" if self._transport_stop is not None else ""
        return {"tempo": f"{tl.source} {tl.bpm:.1f} BPM · bar {bar} beat {beat}/{per_bar}{peers}{stopped}"}
