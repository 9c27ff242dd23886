"""Co-writing: at chosen moments the stage offers the model's likeliest next words and a person
picks one (keys 1–9, a MIDI pad, /lectern/choose N, the remote's buttons).

The scene's `cowrite` table says when: every N-th word, the first word of each line, or the next
word after a hold (/lectern/choose 0). The offer opens when the word's turn comes, and the reveal
waits on it: a pick within `wait` seconds shows the chosen word at once and the worker re-feeds the
stream from it (a `Force`: the rest of the poem is conditioned on the chosen word); otherwise the
model's own word stands at exactly `wait` seconds after the offer. Events: `choice_offer` {poem,
column, words, until, every}, `choice` {poem, column, n, word, by} (by "model" when nobody picked, "none" when the poem ended first),
`token` events of a chosen word carry `chosen` (who chose; and `word` when the person chose the model's
own word, whose first token is marked), and `poem_end` lists `chosen` words.
Only column 0 is co-written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from performance.engine.commands import handles
from performance.engine.state import _WORD_CHAR, _Column, _Poem
from performance.protocol.actions import Outbox
from performance.protocol.commands import Command
from performance.protocol.worker import Force
from performance.show.config import Scene
from performance.textgen.base import Token, starts_word

Engine = Any  # named without importing core.py (which imports this module): no circle


@dataclass
class _Offer:
    """Candidates on stage for the next word of a poem."""

    poem: _Poem
    column: int
    at: float  # when it opened (the word's turn)
    until: float  # when the model's own word stands
    words: tuple[tuple[str, float], ...]  # (text as it joins the poem, p)
    tok: Any  # the model's token that begins the word (held back while the offer is open)


class CowriteMixin:
    """The co-writing concern of the Engine (state lives on the Engine; defaults here)."""

    scene: Scene
    columns: list[_Column]
    _out: Outbox
    _now: float
    offer: _Offer | None = None
    _cw_pass: tuple[Any, float, str, str] | None = None  # (token let through, when it shows, who chose or "", word)
    _cw_mark: tuple[Any, str, str] | None = None  # (the token to mark `chosen` when it is shown, who, the word)
    _cw_poem: _Poem | None = None
    _cw_words = 0  # word starts counted in _cw_poem
    _cw_seen: Any = None
    _cw_hold = False  # /lectern/choose 0 under every = "hold": offer the next word

    # ---- the reveal's gate (reveal.py calls it for each token that is due) ----------------------
    def _choice_gate(self, now: float, col: _Column, poem: _Poem, tok: Any, arrived: float, t: float) -> float | None:
        """The time `tok` shows at, or None while a choice holds it back (it is put back in line)."""
        cw = getattr(self.scene, "cowrite", None)
        if cw is None or col.index != 0:
            return t
        if self._cw_pass is not None and self._cw_pass[0] is tok:
            _, at, by, word = self._cw_pass
            self._cw_pass = None
            if by:
                self._cw_mark = (tok, by, word)
            return max(t, at)
        off = self.offer
        if off is not None and off.tok is not tok and (off.poem is poem or off.poem is not col.poem):
            self._drop_offer(t)  # its word went away (a worker restart wrote the poem again)
            off = None
        if off is None or off.tok is not tok:
            if poem.word_hold or not starts_word(poem.text, tok.text) or not self._moment(cw, poem, tok):
                return t
            words = tuple(getattr(tok, "words", None) or ())[:cw.choices]
            if len(words) < 2:
                return t  # no candidates here (or only one: no choice): the word goes by
            off = self.offer = _Offer(poem, col.index, t, t + cw.wait, words, tok)
            self._emit(t, "choice_offer", poem=poem.n, column=col.index, words=[[w, round(p, 5)] for w, p in words],
                       until=round(off.until, 6), every=cw.every)
        if now >= off.until:  # nobody chose: the model's own word stands, exactly at the deadline
            self._emit(off.until, "choice", poem=poem.n, column=col.index, n=0, word=self._model_word(poem, tok),
                       by="model")
            self.offer, self._cw_hold = None, False
            return max(t, off.until)
        poem.received.appendleft((tok, arrived))
        self._grant(now, col)
        return None

    def _drop_offer(self, t: float) -> None:
        off, self.offer = self.offer, None
        if off is not None:
            self._emit(t, "choice", poem=off.poem.n, column=off.column, n=0, word="", by="none")

    def _moment(self, cw: Any, poem: _Poem, tok: Any) -> bool:
        """Is this word start a moment to offer a choice (counted once per token)?"""
        if poem is not self._cw_poem:
            self._cw_poem, self._cw_words = poem, 0
        if tok is not self._cw_seen:
            self._cw_seen = tok
            self._cw_words += 1
        if cw.every == "hold":
            return self._cw_hold
        if cw.every == "line":
            return not poem.line_text.strip()
        return self._cw_words % cw.words == 0

    @staticmethod
    def _model_word(poem: _Poem, first: Any) -> str:
        """The model's own word as far as it is written (from its first token, held back or just taken)."""
        text = first.text
        rest = list(poem.received)
        for tok, _ in rest[1:] if rest and rest[0][0] is first else rest:
            if not tok.text or not _WORD_CHAR.match(tok.text[0]):
                break
            text += tok.text
        return text.strip()

    # ---- a person chooses -----------------------------------------------------------------------
    def cowrite_choose(self, now: float, n: int, by: str) -> tuple[bool, str]:
        """/lectern/choose N: candidate N stands as the next word (0: offer the next word)."""
        cw = getattr(self.scene, "cowrite", None)
        if cw is None:
            return False, "choose: this scene does not co-write (no cowrite table)"
        off = self.offer
        if n == 0:
            if off is not None:
                return True, "a choice is on stage already"
            self._cw_hold = True
            return True, "the next word will be offered"
        if off is None or not self.columns or self.columns[off.column].poem is not off.poem:
            self.offer = None
            return False, "choose: no choice is on stage now"
        if n > len(off.words):
            return False, f"choose: {n} is not on stage (1..{len(off.words)})"
        text, p = off.words[n - 1]
        poem, col = off.poem, self.columns[off.column]
        self.offer, self._cw_hold = None, False
        self._emit(now, "choice", poem=poem.n, column=col.index, n=n, word=text.strip(), by=by)
        if self._model_word(poem, off.tok) == text.strip() and self._word_complete(poem):
            self._cw_pass = (off.tok, now, by, text.strip())  # the model wrote it too: nothing to re-feed
            return True, f"{text.strip()} (the model's own word)"
        chosen = Token(text, p, getattr(off.tok, "temperature", 0.0))
        new = next(self._ids)
        self._out.worker.append(Force(poem.rid, new, poem.text + text))
        self._rid_poem.pop(poem.rid, None)
        self._rid_poem[new] = poem
        if col.last_rid == poem.rid:
            col.last_rid = new
        poem.rid = new
        poem.received.clear()
        poem.done = False
        poem.granted = poem.revealed + 1  # the chosen word is the one token granted and not shown yet
        poem.received.append((chosen, now))
        self._cw_pass = (chosen, now, by, text.strip())
        self._grant(now, col)
        return True, text.strip()

    @staticmethod
    def _word_complete(poem: _Poem) -> bool:
        """Is the held-back word followed by a token that ends it (or the poem's end)?"""
        toks = [tok.text for tok, _ in poem.received]
        for text in toks[1:]:
            if not text or not _WORD_CHAR.match(text[0]):
                return True
        return poem.done

    # ---- marks in the transcript ----------------------------------------------------------------
    def _show_token(self, col: _Column, poem: _Poem, tok: Any, t: float) -> None:
        super()._show_token(col, poem, tok, t)  # type: ignore[misc]
        mark = self._cw_mark
        if mark is not None and mark[0] is tok:
            self._cw_mark = None
            ev = self._out.events[-1]
            ev["chosen"] = mark[1]
            if tok.text.strip() != mark[2]:  # the model's own word, chosen: its first token carries the mark
                ev["word"] = mark[2]
            self._chosen().setdefault(id(poem), []).append([poem.revealed - 1, mark[2], mark[1]])

    def _end_poem(self, t: float, col: _Column, partial: bool) -> None:
        poem = col.poem
        n = len(self._out.events)
        super()._end_poem(t, col, partial)  # type: ignore[misc]
        chosen = self._chosen().pop(id(poem), None) if poem is not None else None
        if chosen:
            for ev in self._out.events[n:]:
                if ev.get("event") == "poem_end" and ev.get("n") == poem.n:
                    ev["chosen"] = chosen  # [token index, word, who chose]
        if self.offer is not None and self.offer.poem is poem:
            self._drop_offer(t)

    def _shift(self, dt: float) -> None:
        """A pause moves the deadline with everything else; the stage is told the new one."""
        super()._shift(dt)  # type: ignore[misc]
        off = self.offer
        if off is not None and dt > 0:
            off.until += dt
            self._emit(self._now, "choice_offer", poem=off.poem.n, column=off.column,
                       words=[[w, round(p, 5)] for w, p in off.words], until=round(off.until, 6),
                       every=self.scene.cowrite.every, resumed=True)

    def _chosen(self) -> dict[int, list]:
        """Words a person chose, per poem still open (by id), for its poem_end."""
        return self.__dict__.setdefault("_cw_chosen", {})

    def cowrite_report(self) -> dict[str, Any]:
        """The Snapshot's co-writing fields: the words on stage and the seconds left to choose."""
        off = self.offer
        if off is None:
            return {"offer": (), "offer_left": None}
        return {"offer": tuple(w.strip() for w, _ in off.words), "offer_left": round(max(0.0, off.until - self._now), 3)}


@handles("choose")
def choose(e: Engine, now: float, cmd: Command) -> tuple[bool, str]:
    """Co-writing: candidate N is the next word; 0 asks for the next word to be offered."""
    return e.cowrite_choose(now, int(cmd.args[0]), cmd.source)
