"""Co-writing in the generator worker: the candidate words offered at each word start, and the
forced continuation that goes on from the word a person chose.

A co-writing poem's stream is wrapped in `CowriteStream`: the first token of every word carries
`words`, the model's likeliest next words (the x-ray's top-k: a word-level kind's top tokens as
they are; a character-level kind's top letters, each completed greedily to the end of its word on
a copy of the stream's state). `force` answers the engine's `Force`: the request goes on under a
new id from a stream re-fed with the poem's text, chosen word included, under the poem's seed (the
same seed policy as any poem), so what follows is conditioned on the chosen word.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
from collections import deque
from typing import Any

from performance.protocol.worker import Done, Force, Open
from performance.textgen.base import LETTER as _LETTER
from performance.textgen.base import WORD_CHAR as _WORD_CHAR
from performance.textgen.base import Token, XraySpec, starts_word
from performance.textgen.lengths import LengthCounter

log = logging.getLogger("lectern.generator")

MAX_WORD_TOKENS = 24  # a greedy completion stops here even if the model never ends the word
SNAPSHOTS = 8  # a character model's states kept where words were offered (a choice comes within seconds)
_STARTS = re.compile(r"[\w'’-]+")  # runs of word characters: each run that begins with a letter is a word start
TOP_PER_CHOICE = 3  # top-k asked per candidate shown: punctuation and repeats are filtered out


@dataclasses.dataclass(frozen=True, slots=True)
class CowriteToken(Token):
    """A token that begins a word, with the candidate words for that place: (text as it joins the
    poem, probability), likeliest first."""

    words: tuple[tuple[str, float], ...] | None = None


def _holder(stream: Any) -> Any:
    """The stream object that echoes forced ids (walks x-ray wrappers' `inner`), or None."""
    s = stream
    for _ in range(4):
        if s is None or hasattr(s, "echo"):
            return s
        s = getattr(s, "inner", None)
    return None


def cowrite_spec(msg: Open) -> XraySpec:
    """The x-ray a co-writing poem needs for its candidates (the scene's own x-ray, widened)."""
    k = max(msg.cowrite.choices * TOP_PER_CHOICE, 8)
    if isinstance(msg.xray, XraySpec):
        return dataclasses.replace(msg.xray, k=max(msg.xray.k, k))
    return XraySpec(k=k)


class CowriteStream:
    """Wraps a stream; tokens that begin a word carry the candidate words for that place.

    A character model's candidates cost a copy of its state and a greedy walk per candidate, so
    they are made only where the scene may offer a choice (every N-th word, a line's first word);
    the copy made there is kept (SNAPSHOTS of them), so a word chosen at that place is re-fed from
    it in the time of the word's own letters, whatever the length of the poem before it."""

    def __init__(self, inner: Any, choices: int, word_tokens: bool, keep_top: bool, chain: Any = None,
                 every: int = 1) -> None:
        self.inner = inner
        self.choices = choices
        self.word_tokens = word_tokens
        self.keep_top = keep_top  # the scene shows the x-ray itself: its tokens keep their top-k
        self.every = every  # offers at every N-th word start (0: at a line's first word only)
        self.text = ""  # the last characters written (64)
        self.pos = 0  # characters written since the poem began (its prompt's echo included)
        self.count = 0  # tokens written
        self.starts = 0  # word starts written (as the engine counts them)
        self.line_empty = True  # no letter yet on the line being written
        self.snaps: deque[tuple[int, int, int, str, Any]] = deque(maxlen=SNAPSHOTS)
        # a word chain with the originality guard draws a whole line ahead, so its stream's history
        # is not the place a word is offered for: the chain's candidates come from the ids written
        self.chain = chain
        self.ids: list[int] = [chain.newline] * 2 if chain is not None and chain.newline is not None else []

    def feed_ids(self, text: str) -> None:
        """Keep the chain's context (the last ids written) in step with `text` just written."""
        if self.chain is not None:
            self.ids = (self.ids + self.chain.tok.encode(text))[-8:]

    def wrote(self, text: str, tokens: int = 1) -> None:
        """Account for `text` written (by next, or re-fed): position, starts, line, tail."""
        last = self.text[-1:]
        for m in _STARTS.finditer(last + text):
            if _LETTER.match(m.group()) and (m.start() > 0 or not last):
                self.starts += 1
        if "\n" in text:
            self.line_empty = not _LETTER.search(text.rsplit("\n", 1)[1])
        elif _LETTER.search(text):
            self.line_empty = False
        self.text = (self.text + text)[-64:]
        self.pos += len(text)
        self.count += tokens

    def _moment(self) -> bool:
        """Would a word that starts next be one the scene may offer?"""
        if self.every == 0:
            return self.line_empty
        return (self.starts + 1) % self.every == 0

    def set_unit(self, unit: int | None) -> None:
        """Forward /lectern/neuron to an x-ray stream."""
        if hasattr(self.inner, "set_unit"):
            self.inner.set_unit(unit)

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        holder = _holder(self.inner)
        echoing = bool(holder is not None and getattr(holder, "echo", None))
        boundary = not _WORD_CHAR.match(self.text[-1:] or " ")
        snap = None
        if boundary and not echoing and not self.word_tokens and holder is not None and self._moment():
            snap = self._clone(holder)  # a character model's state where a word may begin
        tail = getattr(holder, "tail", "")
        before = (self.pos, self.count, self.starts, self.text)
        tok = self.inner.next(temperature, top_k, top_p)
        prev = self.text
        starts = not echoing and starts_word(prev, tok.text)
        self.wrote(tok.text)
        top = tok.top if self.keep_top else None
        words, ids = None, self.ids
        self.feed_ids(tok.text)
        if starts and (self.word_tokens or self.chain is not None or snap is not None):
            if self.chain is not None:
                # lazy: numpy and the x-ray code load only when a Markov co-writing stream starts
                from performance.textgen.xray import markov_top

                words = self._words(prev, markov_top(self.chain, ids, temperature, self.choices * TOP_PER_CHOICE, tail))
            elif tok.top and snap is not None:
                words = self._complete(snap, tok.top)
                self.snaps.append((*before, snap))
            elif tok.top:
                words = self._words(prev, tok.top)
        if words is None and top is tok.top:
            return tok
        return CowriteToken(tok.text, tok.p, tok.temperature, top, tok.unit, words or None)

    def resume_from(self, text: str) -> tuple[int, int, int, str, Any] | None:
        """The state kept where `text` (the poem so far and a chosen word) left the model's own
        text, if it was kept: (position, tokens, word starts, tail, state)."""
        for snap in reversed(self.snaps):
            pos, _, _, tail, _ = snap
            if pos <= len(text) and text[:pos].endswith(tail):
                return snap
        return None

    def _words(self, prev: str, top: tuple) -> tuple[tuple[str, float], ...]:
        out, seen = [], set()
        for text, p in top:
            key = text.strip().lower()
            if key and key not in seen and starts_word(prev, text) and _WORD_CHAR.match(text.strip()[-1:] or " "):
                seen.add(key)
                out.append((text, p))
            if len(out) >= self.choices:
                break
        return tuple(out)

    @staticmethod
    def _clone(holder: Any) -> Any:
        gen = getattr(holder, "gen", None)
        memo: dict[int, Any] = {}
        for shared in (gen, getattr(gen, "tok", None), getattr(holder, "spec", None)):
            if shared is not None:
                memo[id(shared)] = shared  # the model and its tokenizer are shared, never copied
        return copy.deepcopy(holder, memo)

    def _complete(self, snap: Any, top: tuple) -> tuple[tuple[str, float], ...]:
        """Each of the top letters, completed greedily (temperature 0) to the end of its word."""
        out, seen = [], set()
        for first, p in top:
            if not first or not _LETTER.match(first[0]):
                continue
            s = self._clone(snap)
            s.echo = s.gen.tok.encode(first)
            word = s.next(0.0).text
            for _ in range(MAX_WORD_TOKENS):
                t = s.next(0.0)
                if not t.text or not all(_WORD_CHAR.match(c) for c in t.text):
                    # the character that ends the word comes with it: a chosen word is re-fed whole,
                    # so the continuation cannot lengthen it ("the" into "thee")
                    end = t.text
                    break
                word += t.text
                p *= t.p
            else:
                end = ""
            key = word.lower()
            if key not in seen:
                seen.add(key)
                out.append((word + end, p))
            if len(out) >= self.choices:
                break
        return tuple(sorted(out, key=lambda wp: -wp[1]))


def cowrite_stream(stream: Any, gen: Any, msg: Open) -> CowriteStream:
    """A poem's stream, wrapped for co-writing (msg.cowrite: the scene's CowriteSettings)."""
    cw = msg.cowrite
    word_tokens = bool(getattr(gen, "word_tokens", False)) or getattr(gen, "kind", "") == "served"
    chain = gen if hasattr(gen, "_locate") and hasattr(gen, "newline") else None
    every = 0 if cw.every == "line" else (cw.words if cw.every == "word" else 1)
    return CowriteStream(stream, cw.choices, word_tokens, keep_top=msg.xray is not None, chain=chain, every=every)


def _swallow(stream: Any, holder: Any, counter: LengthCounter) -> bool:
    """Run a stream through the ids it echoes (its state takes them in); True if that ends the poem."""
    done = False
    while holder.echo and not done:
        tok = stream.next(1.0)
        done = counter.feed(tok.text)
    return done


def _refeed(req: Any, text: str) -> bool:
    """Re-feed a fresh stream with the poem's text: a kind that echoes its prompt swallows the echo
    (its state then holds the text), a served model takes the text as the context of its next
    request. The length counter is fed the same text. True when that text already ends the poem."""
    stream = req.stream
    inner = stream.inner if isinstance(stream, CowriteStream) else stream
    holder = _holder(inner)
    if holder is not None:
        done = _swallow(inner, holder, req.counter)
    else:
        base = inner
        while base is not None and not hasattr(base, "_buf"):
            base = getattr(base, "inner", None)
        if base is None:
            log.warning("co-writing: %s cannot be re-fed; its stream goes on unchanged", req.model)
        else:
            base.close()
            base._buf.clear()
            base.text = text
        done = req.counter.feed(text)
    if isinstance(stream, CowriteStream):
        stream.wrote(text, req.counter.tokens)
        stream.feed_ids(text)
    return done


def _resume(old: Any, req: Any, text: str) -> bool | None:
    """A character model goes on from the state kept where the word was offered: the chosen word
    is echoed into it (its own seeded draws go on from there). None when no state was kept."""
    stream = old.stream
    snap = stream.resume_from(text) if isinstance(stream, CowriteStream) else None
    if snap is None:
        return None
    pos, count, starts, tail, state = snap
    inner = stream._clone(state)
    new = CowriteStream(inner, stream.choices, stream.word_tokens, stream.keep_top, every=stream.every)
    new.pos, new.count, new.starts, new.text = pos, count, starts, tail
    new.line_empty = not _LETTER.search(tail.rsplit("\n", 1)[-1]) if "\n" in tail or pos <= len(tail) else False
    if text[:pos]:
        req.counter.feed(text[:pos])  # the poem before the word: not its end (the model wrote on)
    req.counter.tokens = count
    holder = _holder(inner)
    holder.echo = holder.gen.tok.encode(text[pos:])
    req.stream = new
    done = _swallow(inner, holder, req.counter)
    new.wrote(text[pos:], req.counter.tokens - count)
    return done


def force(core: Any, msg: Force) -> None:
    """The engine's Force: request `msg.id` goes on as `msg.new_id` from `msg.text` (core: WorkerCore)."""
    old = core._reqs.pop(msg.id, None)
    if old is None or old.open is None:
        return  # closed meanwhile: the engine has moved on
    served = getattr(old.gen, "kind", "") == "served"
    o = dataclasses.replace(old.open, id=msg.new_id, prompt=old.open.prompt if served else msg.text)
    req = type(old)(msg.new_id, old.gen, None, LengthCounter(o.length, bool(getattr(old.gen, "word_tokens", False))),
                    old.model, old.seed, o.prompt, o)
    done = _resume(old, req, msg.text)
    if done is None:  # no state kept (word-level and served kinds): a fresh stream, re-fed with the text
        if not core._start_stream(req, o, old.model, False):
            return
        done = _refeed(req, msg.text)
    core._cap(req)
    core._reqs[msg.new_id] = req
    core._order.append(msg.new_id)
    if done:
        req.done = True
        core._emit(Done(msg.new_id, capped=req.counter.tokens >= req.counter._cap))
