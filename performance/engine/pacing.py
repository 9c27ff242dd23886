"""Pacing: poems opened and written ahead, tokens granted on credit, holds, pauses and patience."""

from __future__ import annotations

import logging
import re
from collections import deque

from performance.engine.audience import take_word
from performance.engine.state import (
    _WORD_BOUNDARY,
    CUT_MIN_WORDS,
    FIRST_POEM_PATIENCE_S,
    MAX_POEM_PATIENCE_S,
    MIN_POEM_PATIENCE_S,
    _Column,
    _Poem,
)
from performance.protocol.actions import Outbox, Speak
from performance.protocol.worker import Close, Grant, Open
from performance.show.config import Scene, Setlist
from performance.textgen.lengths import trim_poem

log = logging.getLogger("lectern.engine")


class PacingMixin:
    """Poem pacing of the Engine: open, write ahead, grant, advance, end (state lives on the Engine)."""

    # attributes the Engine defines (core.py): typed here for readers and checkers
    scene: Scene
    setlist: Setlist
    columns: list[_Column]
    _out: Outbox

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
                                     originality=sc.originality,
                                     cowrite=getattr(sc, "cowrite", None),
                                     prefix=self.prefix_override if self.prefix_override is not None else sc.prefix))
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
        overridden = (self.next_seed is not None or self.model_override or self.prompt_override is not None
                      or self.audience_word is not None)
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
            prompt = take_word(self, now, self.prompt_override if self.prompt_override is not None else sc.prompt)
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

    def _advance(self, now: float, col: _Column) -> None:
        """Move one column on to `now`: out of its hold or pause, start its poem, reveal, end it."""
        for _ in range(10000):  # bounded: a step never spins forever
            if col.phase == "done" or col.phase in ("hold", "pause") and not self._leave_hold(now, col):
                return
            poem = col.poem
            if poem is None:
                col.phase = "done"
                return
            if not poem.started and not self._begin(now, col, poem):
                return
            if not self._reveal(now, col, poem):
                return
            self._poem_complete(col, poem)

    def _leave_hold(self, now: float, col: _Column) -> bool:
        """A hold or pause that is over (and not held by the voice) gives way to the next poem."""
        if now < col.until:
            return False
        if self._speaking and (self.voice_holds_stage() or self.pause_waits_for_voice() and col.phase == "pause"):
            col.until = now  # the voice has not finished the poem on screen: the next one waits
            return False
        if self._scene_over(col.until, col):
            col.phase = "done"
            return False
        col.start_at = col.until
        col.phase = "poem"
        if col.poem is None:
            self._open_poem(col.until, col)
        return True

    def _begin(self, now: float, col: _Column, poem: _Poem) -> bool:
        """Start the poem once its time has come; False while it must wait."""
        col.start_at = self._start_on_grid(col.start_at)  # start = "beat" | "bar" (engine/tempo.py)
        if now < col.start_at:
            return False
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
                    return False
            start_t = max(col.start_at, poem.received[-1][1] if poem.received else now)
            if not poem.cut_short and self.notice is not None and "cut short" in self.notice:
                self.notice = None  # the model keeps pace again
        self._start_poem(start_t, col)
        return True

    def _poem_complete(self, col: _Column, poem: _Poem) -> None:
        """The poem is whole: end it, then a pause or a hold, and write the next one ahead."""
        t_end = poem.deadline
        self._end_poem(t_end, col, partial=False)
        col.poems_done += 1
        every = self.scene.pacing.pause_every
        last = self.scene.poems is not None and col.poems_done >= self.scene.poems
        if every and col.poems_done % every == 0 and not last:
            secs = self._pause_s()  # pause_beats when a tempo is heard (engine/tempo.py)
            col.phase, col.until = "pause", t_end + secs
            self._emit(t_end, "pause", seconds=secs, until=t_end + secs, column=col.index)
        else:
            col.phase, col.until = "hold", t_end + self._hold_s()
        if self.pending_change is not None:
            col.phase = "done"
            col.until = t_end
        elif not self._scene_over(col.until, col):
            self._open_poem(t_end, col)  # write ahead during the hold
        else:
            col.poem = None
            if self._post_wait_follows():  # the post-wait replaces the last hold, as a pause does
                col.phase, col.until = "hold", t_end

    _speaking = False

    def voice_holds_stage(self) -> bool:
        """when_behind = "hold": the stage never runs ahead of the voice (next poem, next scene)."""
        v = self.scene.voice
        return bool(v is not None and getattr(v, "when_behind", "skip") == "hold" and self.voice_on
                    and getattr(v, "mode", "off") != "off")

    def pause_waits_for_voice(self) -> bool:
        v = self.scene.voice
        return bool(v is not None and getattr(v, "pause_waits", False) and self.voice_on)

    _hold_for_speech = False

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
            i, stanza = 0, False
            for line in text.split("\n"):  # numbered by non-blank lines, as the stage highlights them
                if not line.strip():
                    stanza = i > 0
                    continue
                self._out.sound.append(Speak(poem.n, i, line.strip(), v, self.current_temperature, stanza))
                i, stanza = i + 1, False
        self._last_poem = poem
        if partial and col.last_rid == poem.rid:
            self._out.worker.append(Close(poem.rid))
            col.last_rid = None
