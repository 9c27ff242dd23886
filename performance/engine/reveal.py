"""Reveal: what the audience sees token by token — whole words, masks, line cuts, sonify and voice cues."""

from __future__ import annotations

import logging
import re
from typing import Any

from performance.engine.state import (
    _LETTER,
    _WORD_CHAR,
    _Column,
    _Poem,
)
from performance.protocol.actions import Outbox, Prepare, Sonify, Speak
from performance.show.config import Scene, Setlist
from performance.show.programs import session_seed_draw

log = logging.getLogger("lectern.engine")


class RevealMixin:
    """Text reveal of the Engine: token costs, held words, masks, line ends (state lives on the Engine)."""

    # attributes the Engine defines (core.py): typed here for readers and checkers
    scene: Scene
    setlist: Setlist
    columns: list[_Column]
    _out: Outbox

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
        return self._paced(units, pacing.rate * self.speed)  # on the beat grid when a tempo is heard

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
            t = self._on_grid(max(poem.deadline, arrived))
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
                t = self._choice_gate(now, col, poem, tok, arrived, t)  # co-writing (cowrite.py)
                if t is None:  # a choice is on stage: the word waits for it
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
        at = self._on_grid(max([poem.deadline] + [t for _, t in held]))
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
                elif poem.line:
                    poem.stanza_next = True
            poem.line_text = parts[-1]
        else:
            poem.line_text += tok.text

    def _prepare_ahead(self, poem: _Poem, text: str) -> None:
        """Lines the worker has written whole, ahead of the reveal: the voice synthesises them
        while the stage is still showing them word by word."""
        v = self.scene.voice
        if v is None or not self.voice_on or getattr(v, "mode", "off") not in ("line", "poem", "kept"):
            return  # "poem" reads at the poem's end, "kept" when a poem is kept: its lines are ready by then
        parts = (poem.ahead + text).split("\n")
        for done in parts[:-1]:
            if done.strip():
                self._out.sound.append(Prepare(poem.ahead_line, done.strip(), v, self.current_temperature))
                poem.ahead_line += 1
        poem.ahead = parts[-1][-2000:]

    def _line_done(self, poem: _Poem, line: int, text: str) -> None:
        v = self.scene.voice
        if v is not None and self.voice_on and getattr(v, "mode", "off") == "line":
            self._out.sound.append(Speak(poem.n, line, text.strip(), v, self.current_temperature, poem.stanza_next))
            poem.stanza_next = False
