"""Edits while the show runs: a new version of the setlist, taken at a boundary, never mid-line.

A `Reload` message (from the file watcher's thread, controllers/watch.py) carries a version read
and checked off the frame loop, or the one line saying why a file was refused. A refused one
changes nothing but that line (the Snapshot's `reload_error`). A checked one waits for the next
boundary: the end of a poem with no column in the middle of one (then the next poem is written
with the new version), the start of a scene (a cue), or at once when no line is being revealed
(between poems, waiting for GO, after panic). The scene on stage, when the new version removed
it, plays on as it was until the stage leaves it (GO, a jump, its end): it stays in the setlist
as a "ghost" entry until then, so what stands by and every scene number stay as the operator saw.

The hooks are the mixin's overrides of `_end_poem`, `_start_poem` and `_start_scene` (the Engine
lists this mixin first), so the pacing and scene code read nothing of reloads.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from performance.engine.state import _Column
from performance.protocol.actions import Outbox, Reload
from performance.protocol.worker import Close, Preload
from performance.show.config import Scene, Setlist
from performance.show.reload import scene_key

IDLE_STATES = ("waiting_go", "ended", "panic", "idle")  # no line is being revealed: a reload is taken at once


class ReloadMixin:
    """Reloads of the Engine (state lives on the Engine; core.py)."""

    # attributes the Engine defines (core.py): typed here for readers and checkers
    scene: Scene
    setlist: Setlist
    columns: list[_Column]
    _out: Outbox
    reload_line = ""  # the last reload, for the operator ("" before the first)
    reload_error = ""  # the last refused edit's one line ("" once a good version is read)
    _reload_next: Reload | None = None  # a checked version waiting for its boundary
    _ghost: int | None = None  # the removed scene still on stage: its index, until the stage leaves it
    _restyle = False  # the scene on stage changed: a `scene` event goes out with the next poem

    def _reload_received(self, now: float, msg: Reload) -> None:
        """A new version or a refusal, straight from the inbox."""
        fields = {"file": msg.file, "sha256": msg.sha256, "files": dict(msg.files), "source": msg.source}
        if msg.setlist is None:
            self.reload_error = msg.error
            self._emit(now, "reload", **fields, ok=False, error=msg.error)
            self._reply(msg, False, msg.error)
            return
        self.reload_error = ""
        self._reload_next = msg
        running = {m for e in self.setlist.entries for m in e.scene.models}
        for m in dict.fromkeys(m for e in msg.setlist.entries for m in e.scene.models):
            if m not in running:  # a model the new version names loads now, not at its first poem
                self._out.worker.append(Preload(m))
        when = self._reload_when(now)
        self._emit(now, "reload", **fields, ok=True, takes_effect=when)
        self.reload_line = f"{Path(msg.file).name} {msg.sha256[:8]} waits for the next {when}"
        self._reply(msg, True, f"{msg.file} read (sha256 {msg.sha256[:12]}): takes effect "
                               + ("now" if when == "now" else f"at the next {when}"))
        if when == "now":
            self._take_reload(now, "now")

    def _reply(self, msg: Reload, ok: bool, detail: str) -> None:
        if msg.reply is not None:
            self._out.replies.append((msg.reply, ok, detail))

    def _reload_when(self, now: float) -> str:
        """now (no line being revealed), poem (the next poem's end) or cue (the next scene's start)."""
        if self.state in IDLE_STATES:
            return "now"
        if self.state != "playing":  # a cue's wait: its poems are written ahead; it starts with the new version
            return "cue"
        # paused, the timeline stands still at the pause (deadlines move on by the time paused at resume)
        return "now" if self._between_poems(self.paused_at if self.paused else now) else "poem"

    def _between_poems(self, t: float) -> bool:
        """No column shows a poem at `t`, nor would have started one by then (a hold that ended
        before `t` started its poem at its end, on the engine's timeline, even if no step has yet)."""
        def idle(c: _Column) -> bool:
            if c.phase == "done" or c.poem is None:
                return True
            if c.poem.started:
                return False
            return (c.until if c.phase in ("hold", "pause") else c.start_at) > t

        return all(idle(c) for c in self.columns)

    # ---- the hooks (overrides: the Engine lists ReloadMixin first) ---------------------------------
    def _end_poem(self, t: float, col: _Column, partial: bool) -> None:
        super()._end_poem(t, col, partial)
        if not partial and self._reload_next is not None and self.state == "playing" and self._between_poems(t):
            self._take_reload(t, "poem")

    def _start_poem(self, t: float, col: _Column) -> None:
        if self._restyle:  # the stage takes the new look with the first poem of the new version
            self._restyle = False
            self._emit_scene(t, reloaded=True)
        super()._start_poem(t, col)

    def _start_scene(self, now: float, idx: int) -> None:
        if self._reload_next is not None:
            idx = self._take_reload(now, "cue", idx)
        if self._ghost is not None:  # the stage leaves the removed scene: it leaves the setlist
            idx = self._drop_ghost(idx)
        self._restyle = False  # a new scene's own `scene` event says how it looks
        super()._start_scene(now, idx)

    # ---- taking a version ------------------------------------------------------------------------
    def _take_reload(self, now: float, how: str, idx: int | None = None) -> int | None:
        """Put the waiting version in place; `idx` (a scene about to start) mapped into it."""
        msg, self._reload_next = self._reload_next, None
        old_scene = self.scene
        remap = self._install(msg.setlist, keep_current=how != "cue")
        if how == "cue":
            self._preloaded = None  # poems written ahead with the old version are not used
        else:
            self._refresh_columns(now)
            self._restyle = self._restyle or self.scene.raw != old_scene.raw or self.scene.file != old_scene.file
            self._emit_standby(now)
        removed = self._ghost is not None
        self._emit(now, "reload_applied", file=msg.file, sha256=msg.sha256, at=how, scene=self.scene_idx + 1,
                   name=self.scene.name, removed=removed)
        self.reload_line = (f"{Path(msg.file).name} {msg.sha256[:8]} in effect since {now:.1f} s"
                            + (f" (scene {self.scene.name!r} was removed: it plays on until GO)" if removed else ""))
        return remap(idx) if idx is not None else None

    def _install(self, new: Setlist, keep_current: bool):
        """The new setlist in place of the old, every index the engine holds mapped into it; the
        scene on stage kept as a ghost entry when it was removed (keep_current). Returns the map."""
        old = self.setlist.entries
        keys = [scene_key(e.scene) for e in new.entries]

        def find(i: int) -> int | None:
            k = scene_key(old[i].scene)
            hits = [j for j, kk in enumerate(keys) if kk == k]
            return min(hits, key=lambda j: abs(j - i)) if hits else None

        entries = list(new.entries)
        cur, ghost = find(self.scene_idx), None
        if cur is None and keep_current:
            before = find(self.scene_idx - 1) if self.scene_idx > 0 else None
            ghost = before + 1 if before is not None else min(self.scene_idx, len(entries))
            entries.insert(ghost, old[self.scene_idx])

        def remap(i: int) -> int:
            j = find(i)
            if j is None:  # that scene was removed: the one now in its place
                j = min(i, len(new.entries) - 1)
            return j + 1 if ghost is not None and j >= ghost else j

        scene_idx = ghost if ghost is not None else remap(self.scene_idx)
        self._remap_indices(remap)
        self.setlist = dataclasses.replace(new, entries=tuple(entries))
        self.scene_idx, self._ghost = scene_idx, ghost
        if ghost is None and self.state != "cue_wait":
            self.scene = entries[scene_idx].scene  # the new version of the scene on stage
        return remap

    def _remap_indices(self, remap) -> None:
        """The scene standing by, a waiting cue and what was written ahead for it, in the new numbering."""
        if self.pending_change is not None:
            self.pending_change = remap(self.pending_change)
        if self.cue_wait is not None:
            self.cue_wait.target = remap(self.cue_wait.target)
        if self._preloaded is not None:
            self._preloaded = remap(self._preloaded)

    def _drop_ghost(self, idx: int) -> int:
        g, self._ghost = self._ghost, None
        entries = self.setlist.entries[:g] + self.setlist.entries[g + 1:]

        def shift(i: int) -> int:
            return i - 1 if i > g else min(i, len(entries) - 1)

        self._remap_indices(shift)
        self.setlist = dataclasses.replace(self.setlist, entries=entries)
        self.scene_idx = shift(self.scene_idx)
        return shift(idx)

    def _refresh_columns(self, now: float) -> None:
        """At a boundary: each column writes with the new version from its next poem (a poem opened
        ahead and not yet started is written again; a new number of columns waits for the scene's
        next start)."""
        sc = self.scene
        for i, col in enumerate(self.columns):
            if i < len(sc.models):
                col.model = sc.models[i]
            self._drop_ahead(col)
            p = col.poem
            if p is not None and not p.started and not sc.seed.continue_stream:
                self._out.worker.append(Close(p.rid))
                if col.last_rid == p.rid:
                    col.last_rid = None
                col.poem = None
                self._open_poem(now, col)

    def reload_report(self) -> dict:
        """reload and reload_error for the Snapshot."""
        return {"reload": self.reload_line, "reload_error": self.reload_error}
