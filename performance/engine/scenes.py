"""Scenes: start, stop, the scene standing by, what happens when one ends, restarting poems."""

from __future__ import annotations

import logging
from collections import deque

from performance.engine.state import (
    _Column,
    _Poem,
)
from performance.protocol.actions import Outbox, SoundCtl
from performance.protocol.worker import Close, Train
from performance.show.config import Scene, Setlist, at_model_names

log = logging.getLogger("lectern.engine")


class ScenesMixin:
    """Scene transitions of the Engine (state lives on the Engine; see core.py)."""

    # attributes the Engine defines (core.py): typed here for readers and checkers
    scene: Scene
    setlist: Setlist
    columns: list[_Column]
    _out: Outbox

    def _start_scene(self, now: float, idx: int) -> None:
        if self.cue_wait is not None:  # a scene that starts ends whatever was waiting
            self._end_wait(now, "superseded")
        preloaded = self._take_preloaded(idx)  # its first poems written during a wait (cues.py)
        if not preloaded:
            self._stop_scene(now)
        self.scene_idx = idx
        self.scene = self.setlist.entries[idx].scene
        self.scene_t0 = now
        self.state = "playing"
        self.pending_change = None
        self.blacked_out = False
        self.paused = False
        sc = self.scene
        self._emit_scene(now)
        self._emit_standby(now)
        if sc.train is not None:  # training on stage: the worker starts (or keeps) the trainer
            self._out.worker.append(Train(sc.train))
        if preloaded:
            for col in self.columns:
                col.start_at = now
        else:
            self.columns = [_Column(i, m) for i, m in enumerate(sc.models)]
            for col in self.columns:
                col.start_at = now
                self._open_poem(now, col)
        self._arm_continue(now)  # auto-continue fires the next cue now (cues.py)

    def _emit_scene(self, now: float, **more) -> None:
        """The `scene` event: how the stage lays out and looks (also after a reload: engine/reload.py)."""
        sc = self.scene
        look = sc.look.to_dict() if hasattr(sc.look, "to_dict") else {}
        extra = {"xray": sc.xray.to_dict()} if sc.xray is not None else {}
        if getattr(sc, "cowrite", None) is not None:  # co-writing: the transcript keeps the settings
            extra["cowrite"] = sc.cowrite.to_dict()
        self._emit(now, "scene", n=self.scene_idx + 1, name=sc.name, file=sc.file, layout=sc.layout, look=look, **extra,
                   columns=[{"model": m} for m in sc.models],
                   voice=bool(sc.voice is not None and getattr(sc.voice, "mode", "off") != "off"),
                   sonify=bool(sc.sonify is not None and getattr(sc.sonify, "enabled", False)),
                   voice_settings=sc.voice.to_dict() if hasattr(sc.voice, "to_dict") else None,
                   sonify_settings=sc.sonify.to_dict() if hasattr(sc.sonify, "to_dict") else None,
                   caption=self._caption_on(), temperature=sc.temperature.describe(),
                   length=sc.length.describe(), **more)

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
        self._preloaded = None
        self._out.sound.append(SoundCtl("cancel"))

    def _scene_finished(self, now: float) -> None:
        t_end = min(max(c.until for c in self.columns), now) if self.columns else now
        if self.pending_change is not None and self.cue_wait is None:
            self._start_scene(t_end, self.pending_change)
            return
        entry = self.setlist.entries[self.scene_idx]
        nxt = self.standby
        if self._cue_finished(t_end, nxt):  # a pending wait, or auto-follow after waits (cues.py)
            return
        if entry.cont == "auto-follow" and nxt is not None:
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

    def _on_screen(self) -> _Poem | None:
        """The poem the audience is reading: the newest with text revealed, in the first column."""
        for col in self.columns:
            if col.shown is not None:
                return col.shown
        return self._last_poem

    def _osc_models(self) -> set[str]:
        """Models a performer may name: folders under models/ (by name) and those the setlist uses."""
        return at_model_names(self.setlist.entries)

    def _caption_on(self) -> bool:
        if self.caption is not None:
            return self.caption
        return bool(getattr(self.scene.look, "caption", False))

    def _jump(self, now: float, idx: int) -> tuple[bool, str]:
        if self.state in ("panic", "waiting_go", "ended", "idle", "cue_wait"):
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
        self._shift_wait(dt)
        for col in self.columns:
            col.until += dt
            col.start_at += dt
            if col.poem:
                col.poem.deadline += dt
                col.poem.received = deque((tok, t + dt) for tok, t in col.poem.received)

    _last_poem: _Poem | None = None
