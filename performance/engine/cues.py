"""Cue timing as in QLab: a scene's pre-wait, post-wait and continue mode.

One stage plays one scene at a time, so at most one wait is pending: a pre-wait (the cue has been
fired, by GO or automatically, and takes the stage when it runs out) or a post-wait (the scene
before it asks for the next cue when it runs out). The semantics are in
docs/scenes-and-setlists.md ("Cue timing"). A wait of zero seconds is no wait at all: it writes
no event and changes no time, so a setlist without cue timing plays exactly as it always did.

Waits are deadlines like everything else in the engine: `step` plays the stage up to a wait's
deadline before it fires, so the events fall at exact times whatever the step.
"""

from __future__ import annotations

from dataclasses import dataclass

from performance.engine.state import _Column
from performance.protocol.actions import Outbox
from performance.show.config import Scene, Setlist

MAX_CUE_HOPS = 8  # waits fired in one step (a chain of zero-length scenes never spins)


@dataclass
class _Wait:
    kind: str  # "pre_wait" | "post_wait"
    target: int  # 0-based index of the scene that starts when the waiting is over
    since: float
    until: float
    by: str  # what started it: "start" | "go" | "auto-continue" | "auto-follow"


class CuesMixin:
    """Pre-waits, post-waits and continue modes of the Engine (state lives on the Engine)."""

    # attributes the Engine defines (core.py): typed here for readers and checkers
    scene: Scene
    setlist: Setlist
    columns: list[_Column]
    _out: Outbox
    cue_wait: _Wait | None = None
    _preloaded: int | None = None  # the scene whose first poems are written during the wait

    # -- waits ------------------------------------------------------------------------------

    def _begin_wait(self, t: float, kind: str, target: int, seconds: float, by: str) -> None:
        self.cue_wait = _Wait(kind, target, t, t + seconds, by)
        self._emit(t, "cue_wait", kind=kind, scene=target + 1, name=self.setlist.entries[target].scene.name,
                   seconds=seconds, until=round(t + seconds, 6), by=by)

    def _end_wait(self, t: float, how: str) -> _Wait | None:
        """End the pending wait (how: "elapsed", or the command that cancelled it); returns it."""
        w, self.cue_wait = self.cue_wait, None
        if w is not None:
            self._emit(t, "cue_wait_end", kind=w.kind, scene=w.target + 1,
                       name=self.setlist.entries[w.target].scene.name, how=how)
        return w

    def _cancel_wait(self, now: float, how: str) -> _Wait | None:
        """panic, back, scene: a pending wait is cancelled (nothing starts by itself)."""
        return self._end_wait(now, how) if self.cue_wait is not None else None

    def _shift_wait(self, dt: float) -> None:
        """A pause stops the countdown: the wait's deadline moves with the time spent paused."""
        if self.cue_wait is not None:
            self.cue_wait.since += dt
            self.cue_wait.until += dt

    def _wait_due(self, now: float) -> bool:
        w = self.cue_wait
        return w is not None and not self.paused and w.until <= now

    def _run_cues(self, now: float) -> None:
        """Fire every wait whose deadline has come, the stage played up to each deadline first."""
        for _ in range(MAX_CUE_HOPS):
            if not self._wait_due(now):
                return
            w = self.cue_wait
            if self.state == "playing":
                self._play(w.until)  # the scene on stage reaches the deadline (it may end meanwhile)
            if self.cue_wait is not w:
                continue
            self._end_wait(w.until, "elapsed")
            if w.kind == "post_wait":
                self._fire_cue(w.until, w.target, w.by)
            else:
                self._take_stage(w.until, w.target)

    # -- firing a cue ---------------------------------------------------------------------------

    def _fire_cue(self, t: float, target: int, by: str) -> None:
        """The cue `target` is fired at `t`: its pre-wait runs, then it takes the stage."""
        pre = self.setlist.entries[target].scene.pre_wait
        if pre:
            self._begin_wait(t, "pre_wait", target, pre, by)
        else:
            self._take_stage(t, target)

    def _take_stage(self, t: float, target: int) -> None:
        """The cue's waiting is over: it starts now on an empty stage, or at the playing scene's
        next boundary (its change_at: a poem's end or a line's), never mid-line."""
        if self.state == "playing":
            if self.pending_change != target:
                self.pending_change = target
                self._emit_standby(t)
        else:
            self._start_scene(t, target)

    def _empty_stage(self, t: float) -> None:
        """The scene ends and the stage waits for a pending cue."""
        self._stop_scene(t)
        self.state = "cue_wait"

    def _preload(self, t: float) -> None:
        """On an empty stage, the waiting cue's first poems are written during the wait (as a
        timed pause writes the next poem), so the cue starts on the dot when the wait runs out.
        A scene that trains on stage is not written ahead: its trainer starts with it."""
        w = self.cue_wait
        if w is None or self.state != "cue_wait" or self.columns:
            return
        sc = self.setlist.entries[w.target].scene
        if sc.train is not None:
            return
        start = w.until + (sc.pre_wait if w.kind == "post_wait" else 0.0)
        self.scene_idx, self.scene, self.scene_t0 = w.target, sc, start
        self.columns = [_Column(i, m) for i, m in enumerate(sc.models)]
        for col in self.columns:
            col.start_at = start
            self._open_poem(t, col)
        self._preloaded = w.target

    def _take_preloaded(self, idx: int) -> bool:
        """Does the scene `idx` start with columns written during a wait? (scenes.py)"""
        ready = self._preloaded == idx and bool(self.columns)
        self._preloaded = None
        return ready

    def _go_cue(self, now: float, target: int) -> str | None:
        """GO with cue timing; None when plain GO applies (no wait pending, no pre-wait)."""
        w = self.cue_wait
        if w is not None and w.kind == "pre_wait":  # GO during a pre-wait starts the cue at once
            self._end_wait(now, "go")
            self._take_stage(now, w.target)
            return f"scene {w.target + 1} {self.setlist.entries[w.target].scene.name}: pre-wait skipped"
        if w is not None:  # GO during a post-wait: the post-wait is cancelled, GO fires as always
            self._end_wait(now, "go")
        pre = self.setlist.entries[target].scene.pre_wait
        if not pre:
            return None
        if self.state == "playing":  # the scene on stage ends at its boundary, then the stage waits
            self.pending_change = target
            self._emit_standby(now)
        elif self.state != "cue_wait":
            self._empty_stage(now)
        self._begin_wait(now, "pre_wait", target, pre, "go")
        self._preload(now)
        return f"scene {target + 1} {self.setlist.entries[target].scene.name} after its pre-wait of {pre:g} s"

    # -- continue modes -------------------------------------------------------------------------

    def _open_session(self, now: float) -> None:
        """The session's first scene is fired as by GO: after its pre-wait."""
        pre = self.scene.pre_wait
        if pre:
            self.state = "cue_wait"
            self._begin_wait(now, "pre_wait", self.scene_idx, pre, "start")
            self._preload(now)
        else:
            self._start_scene(now, self.scene_idx)

    def _arm_continue(self, now: float) -> None:
        """auto-continue: the next cue is fired when this one starts (after this one's post-wait,
        counted from the start, as in QLab); it takes the stage after its own pre-wait."""
        if self.setlist.entries[self.scene_idx].cont != "auto-continue":
            return
        nxt = self.standby
        if nxt is None:
            return
        if self.scene.post_wait:
            self._begin_wait(now, "post_wait", nxt, self.scene.post_wait, "auto-continue")
        else:
            self._fire_cue(now, nxt, "auto-continue")

    def _post_wait_follows(self) -> bool:
        """auto-follow with a post-wait: the scene ends when its last poem ends (no hold after it),
        and the post-wait counts from there."""
        return self.setlist.entries[self.scene_idx].cont == "auto-follow" and self.scene.post_wait > 0

    def _cue_finished(self, t_end: float, nxt: int | None) -> bool:
        """The scene has ended by itself: True when cue timing decides what comes next (a wait is
        pending, or auto-follow must wait); False for what a setlist always did."""
        if self.cue_wait is not None:  # a fired cue is still in its pre-wait: the stage waits for it
            self._empty_stage(t_end)
            self._preload(t_end)
            return True
        if self.setlist.entries[self.scene_idx].cont != "auto-follow" or nxt is None:
            return False
        post, pre = self.scene.post_wait, self.setlist.entries[nxt].scene.pre_wait
        if not post and not pre:
            return False  # auto-follow at once: as `advance = "follow"` always did
        self._empty_stage(t_end)
        if post:
            self._begin_wait(t_end, "post_wait", nxt, post, "auto-follow")
        else:
            self._fire_cue(t_end, nxt, "auto-follow")
        self._preload(t_end)
        return True

    # -- what the state shows -------------------------------------------------------------------

    def cue_report(self) -> dict:
        """running, next_auto, cue_wait, countdown and continue_mode for the Snapshot."""
        entries = self.setlist.entries
        running = (self.scene_idx + 1, self.scene.name) if self.state == "playing" else (0, "")
        w = self.cue_wait
        now = self.paused_at if self.paused else self._now
        auto: int | None = None
        countdown = None
        if w is not None:
            auto = w.target
            countdown = max(0.0, w.until - now)
            if w.kind == "post_wait":
                countdown += entries[w.target].scene.pre_wait
        elif self.state == "playing" and entries[self.scene_idx].cont == "auto-follow":
            auto = self.standby  # when this scene ends (no countdown: the end is not known ahead)
        return {
            "running": running,
            "next_auto": (auto + 1, entries[auto].scene.name) if auto is not None else (0, ""),
            "cue_wait": w.kind if w is not None else "",
            "countdown": round(countdown, 3) if countdown is not None else None,
            "continue_mode": entries[self.scene_idx].cont,
        }
