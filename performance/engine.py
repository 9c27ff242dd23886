"""The engine: one `step(now, inbox) -> outbox` that owns the show's state.

It reads nothing but its arguments: commands, tokens from the generator worker and speech events
come in; events (the transcript vocabulary), worker requests and sound actions go out. The runtime
(play.py) routes them; tests and the fake-clock simulator call `step` directly, so a whole setlist
runs in milliseconds and its events fall at exact times.

Times in events are the moments things happen on the engine clock (deadlines), not the moment a
step noticed them, so coarse steps still give exact timelines.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from performance import __version__
from performance.protocol.actions import (
    Keep,
    Outbox,
    Sonify,
    SoundCtl,
    Speak,
    SpeechStarted,
)
from performance.protocol.commands import Command
from performance.protocol.worker import (
    Close,
    Done,
    Failed,
    Grant,
    Loaded,
    Neuron,
    Open,
    Opened,
    ServedState,
    TokenOut,
    Train,
)
from performance.show.config import Scene, Setlist
from performance.show.programs import MAX_TEMPERATURE, session_seed_draw
from performance.show.timed import DueQueue
from performance.textgen.lengths import trim_poem

log = logging.getLogger("lectern.engine")

_LETTER = re.compile(r"[^\W\d_]")
_WORD_CHAR = re.compile(r"[\w'’-]")  # inside a word: letters, digits, apostrophes, hyphens
_WORD_BOUNDARY = re.compile(r"[^\w'’-]$")  # text that ends here ends on a whole word
FIRST_POEM_PATIENCE_S = 1.5  # a poem shown whole: the first of a scene may keep the stage waiting this long
MIN_POEM_PATIENCE_S, MAX_POEM_PATIENCE_S = 0.3, 2.5  # later ones: the scene's hold, within these bounds
CUT_MIN_WORDS = 24  # a poem cut short before the longest patience has at least this many words


@dataclass
class _Poem:
    rid: int
    index: int  # poem index within the scene, this column
    model: str
    seed: int
    prompt: str
    n: int = 0  # session-wide number, given at poem_start
    started: bool = False
    granted: int = 0
    received: deque = field(default_factory=deque)  # (Token, arrival t)
    revealed: int = 0
    done: bool = False
    text: str = ""
    temps: list = field(default_factory=list)
    deadline: float = 0.0
    last_t: float = 0.0
    line: int = 0
    line_text: str = ""
    word_hold: list = field(default_factory=list)
    cut: bool = False  # ended early (a scene change, reseed, panic): its text is not whole
    cut_short: bool = False  # shown whole but cut at its last whole word: the model was too slow
    info: dict = field(default_factory=dict)  # from Opened: checkpoint label, loss curve, unit


@dataclass
class _Column:
    index: int
    model: str
    poem: _Poem | None = None
    phase: str = "poem"  # poem | hold | pause | done
    until: float = 0.0
    poems_done: int = 0
    start_at: float = 0.0  # when the current poem may start revealing
    last_rid: int | None = None
    shown: _Poem | None = None  # the poem whose text is on screen (the last with a token revealed)
    ahead: deque = field(default_factory=deque)  # poems opened early, written while this one shows


class Engine:
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
        self.state = "idle"  # idle | playing | waiting_go | panic | ended
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

    # ---- public ---------------------------------------------------------------------------------
    def start(self, now: float) -> Outbox:
        """Begin the session: session_start, then the start scene."""
        self._out = Outbox()
        self._emit(now, "session_start", setlist=self.setlist.name, file=self.setlist.file, version=__version__,
                   stage=self.stage, seed=self.session_seed)
        self._start_scene(now, self.scene_idx)
        return self._flush()

    def step(self, now: float, inbox: list | tuple = ()) -> Outbox:
        """Advance the show to `now` given everything that arrived since the last step."""
        self._now = now
        for msg in inbox:
            self._receive(now, msg)
        for c in self.waiting.due(now):  # a bounded number per step: a flood falls due over frames
            self._apply(now, c)
        if self.state == "playing" and not self.paused:
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
        return self._flush()

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
        if self.pending_change is not None:
            return self.pending_change
        nxt = self.scene_idx + 1
        if nxt < len(self.setlist.entries):
            return nxt
        return 0 if self.setlist.loop else None

    def snapshot(self) -> dict:
        """State for the operator view and OSC feedback (plain values only)."""
        col = self.columns[0] if self.columns else None
        poem = col.poem if col else None
        sb = self.standby
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
            "state": self.state,
            "override": self.override,
            "model_override": self.model_override or "",
            "prompt_override": self.prompt_override or "",
            "poems": self.poem_counter,
            "notice": self.notice,
            "neuron": self.neuron_shown if self.scene.xray is not None else None,
            **({"served": "; ".join(f"{m} {v}" for m, v in self.served.items())} if self.served else {}),
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

    # ---- inbox ----------------------------------------------------------------------------------
    def _receive(self, now: float, msg: Any) -> None:
        if isinstance(msg, TokenOut):
            poem = self._rid_poem.get(msg.id)
            if poem is not None:
                poem.received.append((msg.token, now))
        elif isinstance(msg, Done):
            poem = self._rid_poem.get(msg.id)
            if poem is not None:
                poem.done = True
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
        elif isinstance(msg, SpeechStarted):
            self._emit(now, "speech", poem=msg.poem, line=msg.line, start=msg.start, end=msg.end)
        elif isinstance(msg, Command):
            if msg.due is not None and msg.due > now:
                refused = self.waiting.push(msg)
                if refused is not None and msg.reply:
                    msg.reply(False, refused)
            else:
                self._apply(now, msg)

    # ---- commands -------------------------------------------------------------------------------
    def _apply(self, now: float, cmd: Command) -> None:
        try:
            ok, detail = self._command(now, cmd)
        except Exception as e:  # a command must never stop the show
            log.exception("command %s failed", cmd.address)
            ok, detail = False, f"internal error: {e}"
        self._emit(now, "command", source=cmd.source, address=cmd.address, args=list(cmd.args), applied=ok,
                   detail=detail)
        if cmd.reply and not (ok and cmd.name == "keep"):  # a keep is answered by the disk's owner
            try:
                cmd.reply(ok, detail)
            except Exception:
                log.exception("reply failed")

    def _command(self, now: float, cmd: Command) -> tuple[bool, str]:
        name, args = cmd.name, cmd.args
        if name == "go":
            if now - self.last_go < self.setlist.min_go_interval:
                return False, f"GO refused: less than {self.setlist.min_go_interval:g} s since the last GO"
            self.last_go = now
            if self.state == "panic" or self.state == "waiting_go" or self.state == "ended":
                target = self.standby
                if target is None:
                    return False, "nothing stands by (end of the setlist)"
                if self.state == "panic":
                    self._emit(now, "resume")
                    self._out.sound.append(SoundCtl("resume"))
                self._start_scene(now, target)
                return True, f"scene {target + 1} {self.scene.name}"
            target = self.standby
            if target is None:
                return False, "nothing stands by (end of the setlist)"
            self.pending_change = target
            self._emit_standby(now)
            return True, f"scene {target + 1} at the next {self.scene.change_at}"
        if name == "back":
            target = max(0, self.scene_idx - 1)
            return self._jump(now, target)
        if name == "scene":
            idx = self.setlist.scene_index(args[0] if args else 0)
            if idx is None:
                return False, f"no scene {args[0]!r} (1..{len(self.setlist.entries)} or a scene name)"
            return self._jump(now, idx)
        if name == "pause":
            if not self.paused:
                self.paused, self.paused_at = True, now
            return True, "paused"
        if name == "resume":
            if self.blacked_out:
                self.blacked_out = False
                self._emit(now, "resume")
                self._out.sound.append(SoundCtl("resume"))
            if self.paused:
                self._shift(now - self.paused_at)
                self.paused = False
            return True, "resumed"
        if name == "panic":
            self._emit(now, "panic", fade_s=self.setlist.panic_fade)
            self._out.sound.append(SoundCtl("panic", self.setlist.panic_fade))
            self._stop_scene(now)
            self.state = "panic"
            self.paused = False
            return True, "panic: fading to black; GO resumes with the scene standing by"
        if name == "blackout":
            if not self.blacked_out:
                self.blacked_out = True
                self._emit(now, "blackout")
                self._out.sound.append(SoundCtl("blackout"))
                if not self.paused:
                    self.paused, self.paused_at = True, now
            return True, "blackout"
        if name == "temperature":
            self.override = min(MAX_TEMPERATURE, max(0.0, float(args[0])))
            self.current_temperature = self.override
            return True, f"temperature {self.override:g}"
        if name == "temperature/release":
            self.override = None
            return True, "temperature follows the scene"
        if name in ("seed", "reseed"):
            if name == "seed":
                seed = int(args[0])
            else:
                self.seed_draws += 1
                seed = session_seed_draw(self.session_seed, self.seed_draws)
            self.next_seed = seed
            self._restart_poems(now)  # may take next_seed: say the seed asked for, not what is left
            return True, f"seed {seed}"
        if name == "model":
            known = self._osc_models()
            if str(args[0]) not in known:  # by name only: no path, and no hint of which folders exist
                return False, f"unknown model {str(args[0])[:60]!r}; known: {', '.join(sorted(known))}"
            self.model_override = str(args[0])
            return True, f"model {self.model_override} from the next poem"
        if name == "model/release":
            was, self.model_override = self.model_override, None
            return True, "model follows the scene" + (f" (was {was})" if was else "")
        if name == "prompt":
            self.prompt_override = str(args[0])
            return True, "prompt set for the next poem"
        if name == "prompt/release":
            self.prompt_override = None
            return True, "prompt follows the scene"
        if name == "speed":
            self.speed = min(10.0, max(0.1, float(args[0])))
            return True, f"speed {self.speed:g}"
        if name == "voice":
            self.voice_on = bool(int(args[0]))
            if not self.voice_on:
                self._out.sound.append(SoundCtl("cancel"))
            return True, f"voice {int(self.voice_on)}"
        if name == "sonify":
            self.sonify_on = bool(int(args[0]))
            return True, f"sonify {int(self.sonify_on)}"
        if name == "volume":
            self.volume = min(1.0, max(0.0, float(args[0])))
            self._out.sound.append(SoundCtl("volume", self.volume))
            return True, f"volume {self.volume:g}"
        if name == "keep":
            poem = self._on_screen()
            if poem is None:
                return False, "no poem on screen to keep yet"
            # the poem the audience sees now: its whole text where the worker wrote it (revealed or
            # not yet), marked partial where it is not finished
            written = poem.text + "".join(tok.text for tok, _ in [*poem.word_hold, *poem.received])
            temps = poem.temps + [tok.temperature for tok, _ in [*poem.word_hold, *poem.received]]
            partial = not poem.done or poem.cut
            text = trim_poem(written)
            if not text.strip():
                return False, f"poem {poem.n} has no text yet"
            footer = self._footer(poem, temps) + (" · (partial)" if partial else "")
            self._emit(now, "keep", poem=poem.n, partial=partial)
            self._out.files.append(Keep(poem.n, text, footer, reply=cmd.reply))
            if self.scene.voice is not None and getattr(self.scene.voice, "mode", "off") == "kept" and self.voice_on:
                lines = [ln for ln in trim_poem(poem.text).split("\n") if ln.strip()]
                for i, line in enumerate(lines):  # numbered by non-blank lines, as the stage highlights them
                    self._out.sound.append(Speak(poem.n, i, line, self.scene.voice, self.current_temperature))
            return True, f"kept poem {poem.n}"
        if name == "neuron":
            if self.scene.xray is None:
                return False, "this scene shows no x-ray (layout \"xray\" or an [xray] table)"
            self.neuron_override = self.neuron_shown = max(0, int(args[0]))
            self._out.worker.append(Neuron(self.neuron_override))
            self._emit(now, "neuron", unit=self.neuron_override)
            return True, f"unit {self.neuron_override}"
        if name == "caption":
            self.caption = (not self._caption_on()) if not args else bool(int(args[0]))
            self._emit(now, "caption", on=self.caption)
            return True, f"caption {int(self.caption)}"
        return False, f"unknown command {cmd.address}"

    _last_poem: _Poem | None = None

    def _on_screen(self) -> _Poem | None:
        """The poem the audience is reading: the newest with text revealed, in the first column."""
        for col in self.columns:
            if col.shown is not None:
                return col.shown
        return self._last_poem

    def _osc_models(self) -> set[str]:
        """Models a performer may name: folders under models/ (by name) and those the setlist uses."""
        from performance.textgen.registry import MODELS_DIR

        names = {m for e in self.setlist.entries for m in e.scene.models}
        if MODELS_DIR.is_dir():
            names |= {d.name for d in MODELS_DIR.iterdir() if (d / "model.json").is_file()}
        return names

    def _caption_on(self) -> bool:
        if self.caption is not None:
            return self.caption
        return bool(getattr(self.scene.look, "caption", False))

    def _jump(self, now: float, idx: int) -> tuple[bool, str]:
        if self.state in ("panic", "waiting_go", "ended", "idle"):
            if self.state == "panic":
                self._emit(now, "resume")
                self._out.sound.append(SoundCtl("resume"))
            self._start_scene(now, idx)
            return True, f"scene {idx + 1} {self.scene.name}"
        self.pending_change = idx
        self._emit_standby(now)
        return True, f"scene {idx + 1} at the next {self.scene.change_at}"

    def _shift(self, dt: float) -> None:
        """After a pause, move every deadline by the time spent paused."""
        self.scene_t0 += dt
        for col in self.columns:
            col.until += dt
            col.start_at += dt
            if col.poem:
                col.poem.deadline += dt
                col.poem.received = deque((tok, t + dt) for tok, t in col.poem.received)

    # ---- scenes ---------------------------------------------------------------------------------
    def _start_scene(self, now: float, idx: int) -> None:
        self._stop_scene(now)
        self.scene_idx = idx
        self.scene = self.setlist.entries[idx].scene
        self.scene_t0 = now
        self.state = "playing"
        self.pending_change = None
        self.blacked_out = False
        self.paused = False
        sc = self.scene
        look = sc.look.to_dict() if hasattr(sc.look, "to_dict") else {}
        extra = {"xray": sc.xray.to_dict()} if sc.xray is not None else {}
        self._emit(now, "scene", n=idx + 1, name=sc.name, file=sc.file, layout=sc.layout, look=look, **extra,
                   columns=[{"model": m} for m in sc.models],
                   voice=bool(sc.voice is not None and getattr(sc.voice, "mode", "off") != "off"),
                   sonify=bool(sc.sonify is not None and getattr(sc.sonify, "enabled", False)),
                   voice_settings=sc.voice.to_dict() if hasattr(sc.voice, "to_dict") else None,
                   sonify_settings=sc.sonify.to_dict() if hasattr(sc.sonify, "to_dict") else None,
                   caption=self._caption_on(), temperature=sc.temperature.describe(),
                   length=sc.length.describe())
        self._emit_standby(now)
        if sc.train is not None:  # training on stage: the worker starts (or keeps) the trainer
            self._out.worker.append(Train(sc.train))
        self.columns = [_Column(i, m) for i, m in enumerate(sc.models)]
        for col in self.columns:
            col.start_at = now
            self._open_poem(now, col)

    def _emit_standby(self, now: float) -> None:
        sb = self.standby
        self._emit(now, "standby", n=(sb + 1) if sb is not None else 0,
                   name=self.setlist.entries[sb].scene.name if sb is not None else "")

    def _stop_scene(self, now: float) -> None:
        for col in self.columns:
            self._drop_ahead(col)
            self._end_poem(now, col, partial=True)
            if col.last_rid is not None:
                self._out.worker.append(Close(col.last_rid))
                col.last_rid = None
        self.columns = []
        self._out.sound.append(SoundCtl("cancel"))

    def _scene_finished(self, now: float) -> None:
        t_end = min(max(c.until for c in self.columns), now) if self.columns else now
        if self.pending_change is not None:
            self._start_scene(t_end, self.pending_change)
            return
        entry = self.setlist.entries[self.scene_idx]
        nxt = self.standby
        if entry.advance == "follow" and nxt is not None:
            self._start_scene(t_end, nxt)
        elif nxt is None:
            self._stop_scene(t_end)
            self.state = "ended"
            self._emit(t_end, "setlist_end")
        else:
            self._stop_scene(t_end)
            self.state = "waiting_go"
            self._emit(t_end, "waiting_go", standby=nxt + 1)

    def _scene_over(self, now: float, col: _Column) -> bool:
        sc = self.scene
        if self.pending_change is not None:
            return True
        if sc.poems is not None and col.poems_done >= sc.poems:
            return True
        return sc.duration is not None and now - self.scene_t0 >= sc.duration

    # ---- poems ----------------------------------------------------------------------------------
    def _temperature(self, col: _Column, poem: _Poem, token_index: int, now: float) -> tuple[float, bool]:
        if self.override is not None:
            return self.override, True
        prog = self.scene.temperature
        return prog.at(now - self.scene_t0, poem.index, token_index, salt=f"{self.session_seed}/{col.index}"), False

    def _new_poem(self, col: _Column, index: int, seed: int, model: str, prompt: str, cont: int | None) -> _Poem:
        sc = self.scene
        rid = next(self._ids)
        rule = sc.length.rule(f"{self.session_seed}/{self.scene_idx}/{col.index}/{index}")
        xray = sc.xray.spec(self.neuron_override) if sc.xray is not None else None
        self._out.worker.append(Open(rid, model, seed, prompt, rule, continue_from=cont, xray=xray, fallback=sc.fallback,
                                     continuation=sc.continuation or sc.lookahead,
                                     originality=sc.originality))
        poem = _Poem(rid=rid, index=index, model=model, seed=seed, prompt=prompt)
        self._rid_poem[rid] = poem
        if len(self._rid_poem) > 256:  # forget old ids: only poems still held by a column matter
            live = {p.rid for c in self.columns for p in [c.poem, *c.ahead] if p is not None}
            self._rid_poem = {k: v for k, v in self._rid_poem.items() if k in live or k == rid}
        return poem

    def _seed_for(self, index: int, col: _Column) -> int:
        """A poem's seed by the scene's program. "new" takes the session's next draw, so a loop, a
        jump or `back` never brings a seed (and so a poem) back."""
        self.seed_draws += 1
        return self.scene.seed.at(index, self.session_seed, f"{self.scene_idx}/{col.index}", draw=self.seed_draws)

    def _drop_ahead(self, col: _Column) -> None:
        while col.ahead:
            self._out.worker.append(Close(col.ahead.popleft().rid))

    def _open_poem(self, now: float, col: _Column) -> None:
        sc = self.scene
        index = col.poems_done
        overridden = self.next_seed is not None or self.model_override or self.prompt_override is not None
        if overridden:
            self._drop_ahead(col)
        if col.ahead and col.ahead[0].index == index:
            poem = col.ahead.popleft()
            if col.last_rid is not None:
                self._out.worker.append(Close(col.last_rid))
        else:
            self._drop_ahead(col)
            seed = self.next_seed if self.next_seed is not None else self._seed_for(index, col)
            model = self.model_override or col.model
            prompt = self.prompt_override if self.prompt_override is not None else sc.prompt
            cont = col.last_rid if (sc.seed.continue_stream and col.last_rid is not None and index > 0) else None
            if col.last_rid is not None and cont is None:
                self._out.worker.append(Close(col.last_rid))
            poem = self._new_poem(col, index, seed, model, prompt, cont)
        self.next_seed = None
        col.poem = poem
        col.last_rid = poem.rid
        self._grant(now, col)
        self._fill_ahead(now, col)

    def _fill_ahead(self, now: float, col: _Column) -> None:
        """Open the next poems early (a poem flick on a CPU): the worker writes them batched."""
        sc = self.scene
        if not sc.ahead or sc.seed.continue_stream:
            return
        while len(col.ahead) < sc.ahead:
            index = col.poems_done + 1 + len(col.ahead)
            if sc.poems is not None and index >= sc.poems:
                break
            seed = self._seed_for(index, col)
            poem = self._new_poem(col, index, seed, self.model_override or col.model,
                                  self.prompt_override if self.prompt_override is not None else sc.prompt, None)
            col.ahead.append(poem)
            self._grant_poem(now, col, poem)

    def _shown_whole(self) -> bool:
        sc = self.scene
        return sc.pacing.reveal == "instant" and not (sc.blocklist.mode == "regenerate" and sc.blocklist.words)

    def _patience(self) -> float:
        """How long a poem shown whole may keep the stage waiting after its turn has come."""
        return min(MAX_POEM_PATIENCE_S, max(MIN_POEM_PATIENCE_S, self.scene.pacing.hold / self.speed))

    def _cut_short(self, col: _Column, poem: _Poem, least: int = 1) -> bool:
        """End a poem at its last whole word because its turn has come; False when not even one
        word is written yet (the previous poem stays on screen meanwhile)."""
        text, keep = "", 0
        for i, (tok, _) in enumerate(poem.received):
            text += tok.text
            if _WORD_BOUNDARY.search(text):
                keep = i + 1
        kept = list(poem.received)[:keep]
        words = len(re.findall(r"[^\W\d_]+", "".join(tok.text for tok, _ in kept)))
        if words < least:
            return False
        poem.received = deque(kept)
        poem.done = True
        poem.cut_short = True
        self._out.worker.append(Close(poem.rid))
        if col.last_rid == poem.rid:
            col.last_rid = None
        if self.notice is None:
            log.warning("%s is slower than scene %r's pace: poems are cut short", poem.model, self.scene.name)
        self.notice = f"{poem.model} is slower than the scene's pace: poems cut short (last: {words} words)"
        return True

    def _grant(self, now: float, col: _Column) -> None:
        if col.poem is not None:
            self._grant_poem(now, col, col.poem)
        for poem in col.ahead:
            self._grant_poem(now, col, poem)

    def _grant_poem(self, now: float, col: _Column, poem: _Poem) -> None:
        """Keep `lookahead` tokens granted beyond what is shown (a whole poem for instant reveal)."""
        if poem.done:
            return
        sc = self.scene
        if sc.pacing.reveal == "instant" or sc.blocklist.mode == "regenerate" and sc.blocklist.words:
            # the poem is shown whole: let it be written whole, in chunks as they arrive; poems
            # written ahead wait with a small grant until the one on stage is written, so it comes first
            want, shown = max(sc.lookahead, 256), poem.revealed + len(poem.received)
            current = col.poem
            if poem is not current and current is not None and not current.done:
                want = sc.lookahead
        else:  # bounded look-ahead: at most `lookahead` tokens written beyond what the stage shows
            # a word held back until it is complete still counts against the look-ahead (a temperature
            # change shows within `lookahead` tokens), but a word longer than that gets one more token
            want, shown = max(sc.lookahead * self.lookahead_scale, len(poem.word_hold) + 1), poem.revealed
        pending = poem.granted - shown
        if pending >= want:
            return
        temps, override = [], False
        for i in range(poem.granted, shown + want):
            t, override = self._temperature(col, poem, i, now)
            temps.append(t)
        poem.granted += len(temps)
        prog = sc.temperature
        self._out.worker.append(Grant(poem.rid, tuple(temps), override, prog.top_k, prog.top_p))

    def _start_poem(self, t: float, col: _Column) -> None:
        poem = col.poem
        assert poem is not None
        self.poem_counter += 1
        poem.n = self.poem_counter
        poem.started = True
        poem.deadline = t
        first_t, _ = self._temperature(col, poem, 0, t)
        self.current_temperature = first_t
        self.current_seed = poem.seed
        self._emit(t, "poem_start", n=poem.n, scene=self.scene_idx + 1, model=poem.model, seed=poem.seed,
                   column=col.index, temperature=first_t, **poem.info)

    def _token_cost(self, text: str, prev: str) -> float:
        pacing = self.scene.pacing
        if pacing.reveal == "instant":
            return 0.0
        if pacing.reveal == "chars":
            units = len(text)
        else:  # words: a token costs one unit for each word it begins
            units, last = 0, prev[-1:] if prev else " "
            for ch in text:
                if _LETTER.match(ch) and not (_LETTER.match(last) or last in "'’"):
                    units += 1
                last = ch
        return units / (pacing.rate * self.speed)

    def _advance(self, now: float, col: _Column) -> None:
        for _ in range(10000):  # bounded: a step never spins forever
            if col.phase == "done":
                return
            if col.phase in ("hold", "pause"):
                if now < col.until:
                    return
                if self._speaking and (self.voice_holds_stage() or self.pause_waits_for_voice() and col.phase == "pause"):
                    col.until = now  # the voice has not finished the poem on screen: the next one waits
                    return
                if self._scene_over(col.until, col):
                    col.phase = "done"
                    return
                col.start_at = col.until
                col.phase = "poem"
                if col.poem is None:
                    self._open_poem(col.until, col)
            poem = col.poem
            if poem is None:
                col.phase = "done"
                return
            if not poem.started:
                if now < col.start_at:
                    return
                start_t = col.start_at
                if self._shown_whole():
                    # a poem shown whole starts (caption included) when it is on screen: when it is
                    # written, or, if the model is too slow for the scene's pace, when its patience
                    # runs out and it is cut short at its last whole word (the show degrades, it
                    # never stalls)
                    if not poem.done:
                        patience = FIRST_POEM_PATIENCE_S if col.poems_done == 0 else self._patience()
                        waited = now - col.start_at
                        # past its patience a poem is cut once it has a few lines' worth of words;
                        # past the longest patience, whatever it has (the flick slows, then thins)
                        least = 1 if waited >= MAX_POEM_PATIENCE_S else CUT_MIN_WORDS
                        if waited < patience or not self._cut_short(col, poem, least):
                            self._grant(now, col)
                            return
                    start_t = max(col.start_at, poem.received[-1][1] if poem.received else now)
                    if not poem.cut_short and self.notice is not None and "cut short" in self.notice:
                        self.notice = None  # the model keeps pace again
                self._start_poem(start_t, col)
            if not self._reveal(now, col, poem):
                return
            # poem complete
            t_end = poem.deadline
            self._end_poem(t_end, col, partial=False)
            col.poems_done += 1
            every = self.scene.pacing.pause_every
            last = self.scene.poems is not None and col.poems_done >= self.scene.poems
            if every and col.poems_done % every == 0 and not last:
                secs = self.scene.pacing.pause_seconds
                col.phase, col.until = "pause", t_end + secs
                self._emit(t_end, "pause", seconds=secs, until=t_end + secs, column=col.index)
            else:
                col.phase, col.until = "hold", t_end + self.scene.pacing.hold / self.speed
            if self.pending_change is not None:
                col.phase = "done"
                col.until = t_end
                continue
            if not self._scene_over(col.until, col):
                self._open_poem(t_end, col)  # write ahead during the hold
            else:
                col.poem = None

    _speaking = False

    def voice_holds_stage(self) -> bool:
        """when_behind = "hold": the stage never runs ahead of the voice (next poem, next scene)."""
        v = self.scene.voice
        return bool(v is not None and getattr(v, "when_behind", "skip") == "hold" and self.voice_on
                    and getattr(v, "mode", "off") != "off")

    def pause_waits_for_voice(self) -> bool:
        v = self.scene.voice
        return bool(v is not None and getattr(v, "pause_waits", False) and self.voice_on)

    def set_speaking(self, speaking: bool) -> None:
        """The runtime tells the engine whether speech is still playing (for pause_waits)."""
        self._speaking = speaking

    _hold_for_speech = False

    def set_speech_backlog_full(self, full: bool) -> None:
        """The runtime tells the engine that speech is behind under the 'hold' policy."""
        self._hold_for_speech = full

    def _reveal(self, now: float, col: _Column, poem: _Poem) -> bool:
        """Reveal what is due. True when the poem is complete."""
        sc = self.scene
        instant = sc.pacing.reveal == "instant" or (sc.blocklist.mode == "regenerate" and sc.blocklist.words)
        if instant and not poem.done:
            self._grant(now, col)
            return False
        if instant and sc.blocklist.words and sc.blocklist.mode == "regenerate":
            text = "".join(tok.text for tok, _ in poem.received)
            if self._blocked_words(text) and poem.index < 10_000:
                self._emit(now, "regenerate", column=col.index, seed=poem.seed)
                self.seed_draws += 1
                self.next_seed = session_seed_draw(self.session_seed, self.seed_draws)
                col.poem = None
                poem.started = False
                self.poem_counter -= 1
                self._open_poem(now, col)
                col.poem.started = False
                return False
        whole_words = not instant and (sc.pacing.reveal == "words" or (sc.blocklist.words and sc.blocklist.mode == "mask"))
        while poem.received:
            if self._hold_for_speech:
                self._grant(now, col)
                return False
            tok, arrived = poem.received[0]
            t = max(poem.deadline, arrived)
            if t > now:
                self._grant(now, col)
                return False
            if whole_words:
                # a word is shown only once it is complete (whatever the model's tokens: a char
                # model's letters, a word model's " word"), so a reveal step never ends inside a
                # word and a blocked word can be masked whole
                poem.received.popleft()
                if poem.word_hold and not _WORD_CHAR.match(tok.text[:1] or " "):
                    # the held word ended where this token begins
                    if self._cut_at_line(poem, self._release_held(col, poem)):
                        return True
                    t = max(t, poem.deadline)
                    if t > now:  # the next word waits for its own turn
                        poem.received.appendleft((tok, arrived))
                        self._grant(now, col)
                        return False
                poem.word_hold.append((tok, t))
                if _WORD_CHAR.match(tok.text[-1:] or " ") and not (poem.done and not poem.received):
                    continue
                if self._cut_at_line(poem, self._release_held(col, poem)):
                    return True
                continue
            poem.received.popleft()
            self._show_token(col, poem, tok, t)
            if self._cut_at_line(poem, tok.text):
                return True
        if poem.word_hold and poem.done:  # the poem's last word; otherwise its end has not come yet
            self._release_held(col, poem)
        self._grant(now, col)
        return poem.done and not poem.received

    def _cut_at_line(self, poem: _Poem, shown: str) -> bool:
        """A change asked for with change_at = "line" ends the poem at the line just finished."""
        if self.scene.change_at == "line" and self.pending_change is not None and "\n" in shown:
            poem.done = True
            poem.received.clear()
            return True
        return False

    def _release_held(self, col: _Column, poem: _Poem) -> str:
        """Show the held tokens (one whole word) at once; returns the text shown."""
        held, poem.word_hold = poem.word_hold, []
        word = "".join(tok.text for tok, _ in held)
        if self._blocked_words(word):
            masked = self._mask(word)
            pos = 0
            out = []
            for tok, t in held:
                out.append((type(tok)(masked[pos:pos + len(tok.text)], tok.p, tok.temperature), t))
                pos += len(tok.text)
            held = out
        # the whole word appears at once, when it is complete and its turn has come; its reveal
        # cost runs from then (letter by letter it would start early and end late)
        at = max([poem.deadline] + [t for _, t in held])
        before = poem.text
        for tok, _ in held:
            self._show_token(col, poem, tok, at)
        poem.deadline = at + self._token_cost(poem.text[len(before):], before)
        return poem.text[len(before):]

    def _blocked_words(self, text: str) -> bool:
        words = self.scene.blocklist.words
        return any(w.lower() in words for w in re.findall(r"[^\W\d_]+(?:['’][^\W\d_]+)*", text))

    def _mask(self, text: str) -> str:
        words = self.scene.blocklist.words
        return re.sub(r"[^\W\d_]+(?:['’][^\W\d_]+)*",
                      lambda m: "•" * len(m.group()) if m.group().lower() in words else m.group(), text)

    def _show_token(self, col: _Column, poem: _Poem, tok: Any, t: float) -> None:
        self._emit(t, "token", poem=poem.n, text=tok.text, temperature=tok.temperature, p=round(tok.p, 6),
                   column=col.index)
        col.shown = poem
        if getattr(tok, "top", None) is not None or getattr(tok, "unit", None) is not None:  # x-ray only
            ev = self._out.events[-1]
            if tok.top is not None:
                ev["top"] = [[s, round(q, 5)] for s, q in tok.top]
            if tok.unit is not None:
                ev["unit"] = round(tok.unit, 5)
        if self.first_token_t is None:
            self.first_token_t = t
        poem.revealed += 1
        poem.temps.append(tok.temperature)
        self.current_temperature = tok.temperature
        poem.deadline = t + self._token_cost(tok.text, poem.text)
        poem.text += tok.text
        sc = self.scene
        if self.sonify_on and sc.sonify is not None and getattr(sc.sonify, "enabled", False) and tok.text.strip():
            self._out.sound.append(Sonify(tok.text, tok.p, tok.temperature, sc.sonify, t))
        if "\n" in tok.text:
            parts = (poem.line_text + tok.text).split("\n")
            for done_line in parts[:-1]:
                if done_line.strip():
                    self._line_done(poem, poem.line, done_line)
                    poem.line += 1
            poem.line_text = parts[-1]
        else:
            poem.line_text += tok.text

    def _line_done(self, poem: _Poem, line: int, text: str) -> None:
        v = self.scene.voice
        if v is not None and self.voice_on and getattr(v, "mode", "off") == "line":
            self._out.sound.append(Speak(poem.n, line, text.strip(), v, self.current_temperature))

    def _restart_poems(self, now: float) -> None:
        """reseed / seed: end what is being written now and start a new poem at once."""
        if self.state != "playing":
            return
        for col in self.columns:
            self._drop_ahead(col)
            if col.poem and col.poem.started:
                self._end_poem(now, col, partial=True)
                col.poems_done += 1
            if col.last_rid is not None:
                self._out.worker.append(Close(col.last_rid))
                col.last_rid = None
            col.phase, col.start_at = "poem", now
            self._open_poem(now, col)

    def _footer(self, poem: _Poem, temps: list[float] | None = None) -> str:
        temps = poem.temps if temps is None else temps
        lo, hi = (min(temps), max(temps)) if temps else (0.0, 0.0)
        temps = f"{lo:.2f}" if abs(hi - lo) < 1e-9 else f"{lo:.2f}–{hi:.2f}"
        return f"— {poem.model} · temperature {temps} · seed {poem.seed}"

    def _end_poem(self, t: float, col: _Column, partial: bool) -> None:
        poem = col.poem
        if poem is None:
            return
        col.poem = None
        if not poem.started:
            return
        if poem.word_hold:
            self._release_held(col, poem)
        if poem.line_text.strip():
            self._line_done(poem, poem.line, poem.line_text)
        lo, hi = (min(poem.temps), max(poem.temps)) if poem.temps else (0.0, 0.0)
        poem.cut = partial
        text = trim_poem(poem.text)
        self._emit(t, "poem_end", n=poem.n, text=text, column=col.index, model=poem.model, seed=poem.seed,
                   temperature_range=[lo, hi], tokens=poem.revealed, partial=partial, footer=self._footer(poem),
                   **({"cut_short": True} if poem.cut_short else {}))
        v = self.scene.voice
        if v is not None and self.voice_on and getattr(v, "mode", "off") == "poem" and not partial:
            lines = [ln for ln in text.split("\n") if ln.strip()]
            for i, line in enumerate(lines):  # numbered by non-blank lines, as the stage highlights them
                self._out.sound.append(Speak(poem.n, i, line, v, self.current_temperature))
        self._last_poem = poem
        if partial and col.last_rid == poem.rid:
            self._out.worker.append(Close(poem.rid))
            col.last_rid = None

    # ---- output ---------------------------------------------------------------------------------
    def _emit(self, t: float, event: str, **fields: Any) -> None:
        self._out.events.append({"t": round(t, 6), "event": event, **fields})

    def _flush(self) -> Outbox:
        out, self._out = self._out, Outbox()
        return out
