"""The engine: one `step(now, inbox) -> Outbox` that owns the show's state.

It reads nothing but its arguments: commands, tokens from the generator worker, speech state and
worker restarts come in as messages; events (the transcript vocabulary), worker requests, sound
actions, files to write and replies go out in the Outbox. The runtime routes them; tests and the
fake-clock simulator call `step` directly, so a whole setlist runs in milliseconds and its events
fall at exact times.

Times in events are the moments things happen on the engine clock (deadlines), not the moment a
step noticed them, so coarse steps still give exact timelines. The class is split by concern:
commands.py (one handler per command), scenes.py, pacing.py, reveal.py, cues.py (pre-wait,
post-wait, continue modes) and reload.py (edits while the show runs); docs/architecture.md.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import deque
from typing import Any

from performance import __version__
from performance.engine.audience import audience_report
from performance.engine.commands import run_command
from performance.engine.cowrite import CowriteMixin
from performance.engine.cues import MAX_CUE_HOPS, CuesMixin
from performance.engine.pacing import PacingMixin
from performance.engine.reload import ReloadMixin
from performance.engine.reveal import RevealMixin
from performance.engine.scenes import ScenesMixin
from performance.engine.state import _Column, _Poem
from performance.engine.tempo import TempoMixin
from performance.protocol.actions import Outbox, Reload, SpeechStarted, SpeechState, WorkerRestarted
from performance.protocol.commands import Command
from performance.protocol.tempo import TempoGone, TempoState
from performance.protocol.worker import Done, Failed, Loaded, Opened, ServedState, TokenOut
from performance.show.config import Scene, Setlist
from performance.show.programs import next_pause_text
from performance.show.timed import DueQueue

log = logging.getLogger("lectern.engine")


# messages one concern handles: a shared tempo (engine/tempo.py), a setlist read again off the
# frame loop (engine/reload.py), the voice (below)
CONCERN_MESSAGES: dict[type, str] = {TempoState: "_tempo_message", TempoGone: "_tempo_message",
                                     Reload: "_reload_received", SpeechStarted: "_speech", SpeechState: "_speech"}


class Engine(ReloadMixin, CowriteMixin, ScenesMixin, PacingMixin, RevealMixin, CuesMixin, TempoMixin):  # ReloadMixin first: its hooks
    """The show's state and rules. Not thread-safe: only the frame loop calls it."""

    def __init__(self, setlist: Setlist, *, session_seed: int | None = None, stage: dict | None = None,
                 start_scene: int | None = None, lookahead_scale: int = 1) -> None:
        self.setlist = setlist
        self.session_seed = session_seed if session_seed is not None else (
            setlist.seed if setlist.seed is not None else random.randrange(2**31))
        self.stage = stage or {"width": 1920, "height": 1080, "fps": 60}
        # under --time-scale X the stage shows X times more tokens per frame: the look-ahead in
        # tokens grows with it so it stays the same in time
        self.lookahead_scale = max(1, lookahead_scale)
        self._ids = itertools.count(1)
        self.scene_idx = (start_scene if start_scene is not None else setlist.start) - 1
        self.scene: Scene = setlist.entries[self.scene_idx].scene
        self.scene_t0 = 0.0
        self.state = "idle"  # idle | playing | waiting_go | cue_wait | panic | ended
        self.paused = False
        self.paused_at = 0.0
        self.blacked_out = False
        self.override: float | None = None
        self.speed = 1.0
        self.voice_on = True
        self.sonify_on = True
        self.volume = 1.0
        self.caption: bool | None = None
        self.columns: list[_Column] = []
        self.pending_change: int | None = None
        self.next_seed: int | None = None
        self.model_override: str | None = None
        self.prompt_override: str | None = None
        self.prefix_override: str | None = None  # /lectern/prefix: the pretrained kind's poet
        self.audience_on = bool(setlist.audience is not None and setlist.audience.words)  # engine/audience.py
        self.audience_word: str | None = None  # an audience word waiting to seed the next poem
        self.audience_limit = None  # its RateLimit, made with the first word
        self.poem_counter = 0
        self.seed_draws = 0  # fresh seeds drawn this session ("new" programs, reseed)
        self.notice: str | None = None  # how the show is degrading, for the operator (None: it is not)
        self.last_go: float = -1e9
        self.waiting = DueQueue()  # commands due later (OSC bundle timetags), bounded
        self.current_temperature = 0.0
        self.current_seed = 0
        self.errors: deque[str] = deque(maxlen=8)
        self.models_loaded: dict[str, str] = {}
        self.served: dict[str, str] = {}  # served model -> "up 64 tok/s" or "down: why", for health
        self.first_token_t: float | None = None
        self._rid_poem: dict[int, _Poem] = {}
        self._out = Outbox()
        self._now = 0.0
        self.neuron_override: int | None = None  # /lectern/neuron: the x-ray's watched unit
        self.neuron_shown: int | None = None  # the unit on stage now (the operator view shows it)

    def start(self, now: float) -> Outbox:
        """Begin the session: session_start, then the start scene."""
        self._out = Outbox()
        self._emit(now, "session_start", setlist=self.setlist.name, file=self.setlist.file, version=__version__,
                   stage=self.stage, seed=self.session_seed)
        self._open_session(now)  # the first scene, after its pre-wait (cues.py)
        return self._flush()

    def step(self, now: float, inbox: list | tuple = ()) -> Outbox:
        """Advance the show to `now` given everything that arrived since the last step."""
        self._now = now
        for msg in inbox:
            self._receive(now, msg)
        self._tempo_check(now)  # a shared tempo nobody refreshes is gone (engine/tempo.py)
        for c in self.waiting.due(now):  # a bounded number per step: a flood falls due over frames
            self._apply(now, c)
        for _ in range(MAX_CUE_HOPS):  # cue waits fall due at their deadlines (cues.py)
            self._run_cues(now)
            self._play(now)
            if not self._wait_due(now):
                break
        self._out.awaiting_tokens = self.waiting_for_worker()
        return self._flush()

    def _play(self, now: float) -> None:
        """The scene on stage, moved on to `now`: reveal, hold, pause, and its end."""
        if self.state == "playing" and not self.paused and not self._held_by_transport():
            for col in self.columns:
                self._advance(now, col)
                if self.columns and col.phase != "done":
                    self._grant(now, col)  # keep poems written ahead fed, during holds too
            if self.columns and all(c.phase == "done" for c in self.columns):
                if not (self._speaking and self.voice_holds_stage()):
                    self._scene_finished(now)
                else:  # the last lines are still spoken: the next scene starts when they end
                    for col in self.columns:
                        col.until = max(col.until, now)

    def end(self, now: float) -> Outbox:
        """Close the session: finish open poems in the transcript, then session_end."""
        for col in self.columns:
            self._end_poem(now, col, partial=True)
        self._emit(now, "session_end", poems=self.poem_counter)
        self.state = "ended"
        return self._flush()

    @property
    def standby(self) -> int | None:
        """0-based index of the scene standing by (what GO starts), or None."""
        if self.cue_wait is not None:  # a cue fired or asked for: GO starts it at once
            return self.cue_wait.target
        if self.pending_change is not None:
            return self.pending_change
        nxt = self.scene_idx + 1
        if nxt < len(self.setlist.entries):
            return nxt
        return 0 if self.setlist.loop else None

    def snapshot(self) -> dict[str, Any]:
        """The engine's part of the state Snapshot (plain values; the runtime's publisher adds its
        own and builds the one `Snapshot`: performance.runtime.publisher.compose)."""
        col = self.columns[0] if self.columns else None
        poem = col.poem if col else None
        sb = self.standby
        pacing = self.scene.pacing
        return {
            "scene": (self.scene_idx + 1, self.scene.name),
            "standby": (sb + 1, self.setlist.entries[sb].scene.name) if sb is not None else (0, ""),
            # "n of N" counts within the scene when the scene has N poems; else the session's count
            "poem": ((poem.index + 1 if poem and poem.started else (col.poems_done if col else 0)), self.scene.poems)
            if self.scene.poems else (poem.n if poem and poem.started else self.poem_counter, 0),
            "temperature": self.override if self.override is not None else self.current_temperature,
            "seed": self.current_seed,
            "model": poem.model if poem else self.scene.models[0],
            "paused": int(self.paused or self.blacked_out),
            "blackout": int(self.blacked_out),
            "voice": int(self.voice_on),
            "volume": self.volume,
            "sonify": int(self.sonify_on),
            "state": self.state,
            "override": self.override,
            "model_override": self.model_override or "",
            "prompt_override": self.prompt_override or "",
            "poems": self.poem_counter,
            "notice": self.notice,
            "neuron": self.neuron_shown if self.scene.xray is not None else None,
            "xray": self.scene.xray is not None,
            "served": "; ".join(f"{m} {v}" for m, v in self.served.items()) if self.served else None,
            "next_pause": next_pause_text(col.poems_done if col else 0, pacing.pause_every, pacing.pause_seconds,
                                          self.scene.poems),
            "awaiting_tokens": self.waiting_for_worker(),
            "errors": tuple(self.errors),
            **self.cue_report(),
            **self.reload_report(),
            **self.cowrite_report(),
            **self.tempo_report(),
            **audience_report(self),
        }

    def waiting_for_worker(self) -> bool:
        """Is a poem on stage waiting for tokens the worker owes it? (the runtime's stall watchdog)"""
        if self.state != "playing" or self.paused:
            return False
        for col in self.columns:
            p = col.poem
            if p is not None and p.started and not p.done and not p.received and p.granted > p.revealed:
                return True
        return False

    def current_poem(self) -> _Poem | None:
        for col in self.columns:
            if col.poem and col.poem.started:
                return col.poem
        return None

    def _receive(self, now: float, msg: Any) -> None:
        concern = CONCERN_MESSAGES.get(type(msg))
        if concern is not None:  # a message one concern mixin owns
            getattr(self, concern)(now, msg)
            return
        if isinstance(msg, TokenOut):
            poem = self._rid_poem.get(msg.id)
            if poem is not None:
                poem.received.append((msg.token, now))
                self._prepare_ahead(poem, msg.token.text)
        elif isinstance(msg, Done):
            poem = self._rid_poem.get(msg.id)
            if poem is not None:
                poem.done = True
                self._prepare_ahead(poem, "\n")  # its last line, which no newline ends
        elif isinstance(msg, Failed):
            text = f"model {msg.model}: {msg.error}" + (f" — using {msg.fallback}" if msg.fallback else "")
            self.errors.append(text)
            self._emit(now, "error", source="model", model=msg.model, detail=msg.error, fallback=msg.fallback)
            poem = self._rid_poem.get(msg.id) if msg.id is not None else None
            if poem is not None:
                if msg.fallback:
                    poem.model = msg.fallback
                else:  # nothing can write: end this column's part quietly, the show goes on
                    for col in self.columns:
                        if col.poem is poem:
                            col.poem = None
                            col.phase = "done"
        elif isinstance(msg, ServedState):
            was_up = self.served.get(msg.model, "up").startswith("up")
            self.served[msg.model] = f"up {msg.tok_s:.0f} tok/s" if msg.up else f"down ({msg.detail})"
            if msg.up != was_up:  # the transcript notes changes, not every rate update
                self._emit(now, "served", model=msg.model, up=msg.up, detail=msg.detail)
        elif isinstance(msg, Loaded):
            self.models_loaded[msg.model] = msg.kind
        elif isinstance(msg, Opened):
            poem = self._rid_poem.get(msg.id)
            if poem is not None:
                poem.info = {k: v for k, v in (("checkpoint", msg.checkpoint), ("curve", [list(c) for c in msg.curve]),
                                               ("unit_index", msg.unit)) if v not in (None, [])}
                if msg.unit is not None:
                    self.neuron_shown = msg.unit
                col = next((c for c in self.columns if c.poem is poem), None)
                if poem.started and col is not None and poem.info:  # it began before the worker said
                    self._emit(now, "poem_info", n=poem.n, column=col.index, **poem.info)
        elif isinstance(msg, WorkerRestarted):  # a fresh worker knows no request: write the poems again
            self.next_seed = None
            self._restart_poems(now)
        elif isinstance(msg, Command):
            if msg.due is not None and msg.due > now:
                refused = self.waiting.push(msg)
                if refused is not None and msg.reply:
                    self._out.replies.append((msg.reply, False, refused))
            else:
                self._apply(now, msg)

    def _speech(self, now: float, msg: SpeechStarted | SpeechState) -> None:
        """The voice: a line's audio began (with each word's interval), or whether it speaks now."""
        if isinstance(msg, SpeechStarted):
            extra = {"words": [list(w) for w in msg.words], "engine": msg.engine, "voice": msg.voice} if msg.words else {}
            self._emit(now, "speech", poem=msg.poem, line=msg.line, start=msg.start, end=msg.end, **extra)
            return
        self._speaking = msg.speaking
        v = self.scene.voice  # under when_behind = "hold" the stage waits while the queue is past its limit
        self._hold_for_speech = bool(v is not None and getattr(v, "when_behind", "skip") == "hold"
                                     and msg.backlog > getattr(v, "queue", 4))

    def _apply(self, now: float, cmd: Command) -> None:
        try:
            ok, detail = run_command(self, now, cmd)
        except Exception as e:  # a command must never stop the show
            log.exception("command %s failed", cmd.address)
            ok, detail = False, f"internal error: {e}"
        self._emit(now, "command", source=cmd.source, address=cmd.address, args=list(cmd.args), applied=ok,
                   detail=detail)
        if cmd.reply and not (ok and cmd.name == "keep"):  # a keep is answered by the disk's owner
            self._out.replies.append((cmd.reply, ok, detail))

    def _emit(self, t: float, event: str, **fields: Any) -> None:
        self._out.events.append({"t": round(t, 6), "event": event, **fields})

    def _flush(self) -> Outbox:
        out, self._out = self._out, Outbox()
        return out
