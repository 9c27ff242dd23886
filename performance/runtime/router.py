"""The router: everything the engine's Outbox holds goes to its owner, and every Command from the
inbox goes to the owner its table entry names (engine, runtime, a controller)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from performance.protocol.actions import Keep, Outbox, Prepare, Sonify, SoundCtl, Speak, VoiceCtl
from performance.protocol.commands import TABLE, Command

log = logging.getLogger("lectern.play")
PLANNED_RESTART = 75  # the supervisor restarts at once, without counting a crash
PUBLISH_ON = frozenset({"scene", "poem_start", "command", "error", "reload", "reload_applied"})  # events that change what listeners show


class Router:
    """Routes one session's traffic; built by the Session, driven by the frame loop."""

    def __init__(self, session) -> None:
        self.s = session
        self.utterances = 0
        sound = {Speak: self._speak, Sonify: self._sonify, SoundCtl: self._sound_ctl,
                 VoiceCtl: lambda a: self.s.sound.set_voice(**{a.key: a.value}),
                 Prepare: lambda a: self.s.sound.prepare(a.line, a.text, a.settings, a.temperature)}
        self._sound: dict[type, Callable] = sound

    # ---- commands from the inbox -------------------------------------------------------------------
    def split(self, now: float, msgs: list) -> list:
        """Commands owned by the runtime or a controller are handled here; the rest is the engine's."""
        engine_in = []
        for m in msgs:
            spec = TABLE.get(m.name) if isinstance(m, Command) else None
            if spec is not None and spec.owner == "runtime":
                self._runtime_command(now, m)
            elif spec is not None and spec.owner == "controller":
                ok, detail = self.s.controllers.answer(m)
                if m.reply:
                    m.reply(ok, detail)
            else:
                if isinstance(m, Command):
                    self.s.controllers.observe(m)  # MIDI learn binds the next command it sees
                engine_in.append(m)
        return engine_in

    def _runtime_command(self, now: float, cmd: Command) -> None:
        s = self.s
        if cmd.name == "quit":
            s.quit_requested = True
        elif cmd.name == "fullscreen":
            s.display.toggle_fullscreen()
        elif cmd.name == "restart":  # a planned restart from the timetable: written like any command
            ok = bool(s.args.install)
            s.transcript.write({"t": now, "event": "command", "source": cmd.source, "address": "restart", "args": [],
                                "applied": ok, "detail": "planned restart" if ok else "only under --install"})
            if ok:
                log.warning("scheduled restart ([[at]])")
                s.exit_code = PLANNED_RESTART
                s.quit_requested = True
        elif cmd.name == "reload":  # read on the watcher's thread; the engine answers once it has the files
            watch = s.controllers.get("watch")
            if watch is not None:
                watch.request(cmd)
            elif cmd.reply:
                cmd.reply(False, "reload: this session has no setlist file to read")

    # ---- the engine's outbox -----------------------------------------------------------------------
    def route(self, out: Outbox) -> None:
        s = self.s
        for msg in out.worker:
            s.worker.send(msg)
        s.transcript.write_many(list(out.events))
        for ev in out.events:
            self._event(ev)
        out.answer()
        for f in out.files:
            if isinstance(f, Keep):
                s.transcript.keep(f.text, f.footer, getattr(f, "reply", None))
        if s.sound is not None:
            for a in out.sound:
                try:
                    self._sound[type(a)](a)
                except Exception:
                    log.exception("sound action failed; the show goes on")

    def _event(self, ev: dict) -> None:
        """One engine event to its readers other than the transcript (route() hands it the frame's lot)."""
        s = self.s
        if s.display.stage_state is not None:
            s.display.stage_state.apply(ev)
        if s.display.terminal:
            _terminal_event(ev)
        if ev["event"] == "command" and s.operator is not None:
            s.operator.command(f"{ev['source']} {ev['address']} {ev['args']} → {ev['detail']}")
        if ev["event"] in PUBLISH_ON:
            s.cadence.changed()
        if ev["event"] in ("reload_applied", "scene"):  # controllers number and name the scenes the engine has
            s.controllers.ctx.setlist = s.engine.setlist

    def _speak(self, a: Speak) -> None:
        # lazy: numpy and the sound/x-ray code load only when that part starts
        from performance.sound import Utterance

        self.utterances += 1
        self.s.sound.speak(Utterance(self.utterances, a.poem, a.line, a.text, a.settings, a.temperature, a.stanza))

    def _sonify(self, a: Sonify) -> None:
        self.s.sound.sonify(a.text, a.p, a.temperature, a.settings, a.at)

    def _sound_ctl(self, a: SoundCtl) -> None:
        sound = self.s.sound
        {"volume": lambda: sound.set_volume(a.value), "panic": lambda: sound.panic(a.value),
         "blackout": sound.blackout, "resume": sound.resume, "cancel": sound.cancel_speech}[a.op]()


def _terminal_event(ev: dict) -> None:
    """Without a display the poems are written to the terminal."""
    kind = ev["event"]
    if kind == "token":
        sys.stdout.write(ev["text"])
        sys.stdout.flush()
    elif kind == "poem_end":
        sys.stdout.write("\n\n")
    elif kind == "scene":
        sys.stdout.write(f"\n=== {ev['name']} ===\n\n")
    elif kind == "pause":
        sys.stdout.write(f"[pause {ev['seconds']:g} s]\n\n")
