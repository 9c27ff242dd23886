"""Spreeder: template poems from a corpus whose content words are swapped for WordNet relatives.

`train` cuts the corpus into 12-line template poems, finds for every content word its synonyms,
hypernyms and hyponyms in WordNet (Debian's wordnet-base files, read by wordnet.py), inflects them
like the original (plural nouns, verb person and tense) and stores the lot as int32 arrays, so
sampling needs no WordNet at all and loading runs no code. Words WordNet does not know (archaic
spellings, names) are replaced from a reservoir of such corpus words.

Temperature is the replacement rate: 0 = the template itself, 1 = every replaceable word. A
stream's temperature is read as that rate (clamped to 0..1); the engine maps the contract's live
temperature (0..3) onto it by dividing by 3. Capitalisation follows the original word.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from performance import __version__
from performance.textgen.base import ModelFileError, SequentialBatch, Token
from performance.textgen.corpus import Corpus
from performance.textgen.inflect import form_of, inflect, match_case
from performance.textgen.registry import write_card
from performance.textgen.tokenizers import WordTokenizer

LINES_PER_TEMPLATE = 12
STOPWORDS = frozenset("""
a an the and or but nor for so yet of to in on at by with from into onto upon over under than then
as if when while where whence whither who whom whose which what that this these those there here
i me my mine we us our ours you your yours thou thee thy thine ye he him his she her hers it its
they them their theirs one all any some each every no not none both either neither such own same
is am are was were be been being have has had having do does did doing shall should will would
can could may might must o oh ah let how why too very more most much many few less least only
just also again ever never now still even thus hence till until before after above below up down
out off about against between through during without within among amongst doth hath art wast
wert dost didst hast shalt wilt canst couldst wouldst shouldst thence thereby therein ere nay yea
""".split())


def rate_from_temperature(t: float) -> float:
    """A stream's temperature read as Spreeder's replacement rate."""
    return min(1.0, max(0.0, t))


def _templates(corpus: Corpus) -> list[str]:
    lines = [ln.rstrip() for ln in corpus.text.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    return ["\n".join(lines[i:i + LINES_PER_TEMPLATE]) + "\n"
            for i in range(0, len(lines) - LINES_PER_TEMPLATE + 1, LINES_PER_TEMPLATE)]


def train_spreeder(corpus: Corpus, out_dir: Path, seed: int) -> None:
    """Build templates, replacement candidates and the reservoir into `out_dir`."""
    from performance.textgen.wordnet import WordNet

    t0 = time.monotonic()
    wn = WordNet()
    irregular_plural = {}
    for form, bases in wn.exceptions["n"].items():
        for b in bases:
            irregular_plural.setdefault(b, form)
    irregular_past = {}
    for form, bases in wn.exceptions["v"].items():
        for b in bases:
            if not form.endswith("n"):  # prefer "went" over "gone": the simple past
                irregular_past.setdefault(b, form)
    irregular = {"plural": irregular_plural, "past": irregular_past}
    templates = _templates(corpus)
    counts = Counter(w for t in templates for w in WordTokenizer.split(t))
    vocab: list[str] = sorted(counts)
    index = {w: i for i, w in enumerate(vocab)}

    def vid(w: str) -> int:
        if w not in index:
            index[w] = len(vocab)
            vocab.append(w)
        return index[w]

    candidates: dict[int, list[int]] = {}
    reservoir_words = []
    for word in list(counts):
        low = word.lower()
        if not word.isalpha() or low in STOPWORDS or len(low) < 3:
            continue
        best = None
        for pos in ("n", "v", "a", "r"):
            base = wn.morphy(low, pos)
            if base is None:
                continue
            form = form_of(low, base, pos)
            if form is None:
                continue
            senses = len(wn.index[pos].get(base, []))
            if best is None or senses > best[3]:
                best = (pos, base, form, senses)
        if best is None:
            if not any(wn.morphy(low, p) for p in ("n", "v", "a", "r")):
                reservoir_words.append(word)
            continue
        pos, base, form, _ = best
        forms = []
        for rel in wn.related(base, pos):
            if pos == "v" and form == "third" and rel == "be":
                continue
            forms.append(match_case(word, inflect(rel, form, irregular)))
        if forms:
            candidates[index[word]] = [vid(f) for f in dict.fromkeys(forms)]
    wn.close()
    reservoir_words.sort()
    reservoir = [vid(w) for w in reservoir_words]
    unknown = {index[w] for w in reservoir_words}
    tpl_ids = [[index[w] for w in WordTokenizer.split(t)] for t in templates]
    keys = sorted(candidates)
    arrays = {
        "templates": np.array([i for t in tpl_ids for i in t], dtype=np.int32),
        "template_offsets": np.cumsum([0] + [len(t) for t in tpl_ids]).astype(np.int32),
        "cand_keys": np.array(keys, dtype=np.int32),
        "cand_offsets": np.cumsum([0] + [len(candidates[k]) for k in keys]).astype(np.int32),
        "cand_ids": np.array([c for k in keys for c in candidates[k]], dtype=np.int32),
        "reservoir": np.array(reservoir, dtype=np.int32),
        "unknown": np.array(sorted(unknown), dtype=np.int32),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(out_dir / "model.safetensors"))
    card = {"kind": "spreeder", "name": out_dir.name, "engine_version": __version__, "format": 1,
            "hyperparameters": {"lines_per_template": LINES_PER_TEMPLATE, "relations": "synonyms, hypernyms, hyponyms, similar",
                                "senses": 2},
            "vocab": vocab, "vocab_size": len(vocab), "templates": len(templates),
            "replaceable_words": len(candidates), "reservoir_words": len(reservoir), "corpus": corpus.card(),
            "wordnet": str(wn.folder), "training_seconds": round(time.monotonic() - t0, 2), "device": "cpu",
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "seed": seed,
            "temperature": "replacement rate 0..1 (live OSC temperature 0..3 is divided by 3)"}
    write_card(out_dir, card)
    gen = load_spreeder(out_dir, card)
    card["samples"] = {}
    for rate in (0.3, 0.6, 0.9):
        s = gen.start(seed)
        card["samples"][str(rate)] = "".join(s.next(rate).text for _ in range(s.template_len))
    write_card(out_dir, card)


class SpreederStream:
    """One poem after another: a template chosen by the seed, its words swapped at the rate."""

    def __init__(self, gen: SpreederGenerator, seed: int, prompt: str = "") -> None:
        self.gen = gen
        self.rng = random.Random(seed)
        self.tail = ""
        self._new_template()

    def _new_template(self) -> None:
        g = self.gen
        k = self.rng.randrange(len(g.template_offsets) - 1)
        self.ids = g.templates[g.template_offsets[k]:g.template_offsets[k + 1]]
        self.pos = 0

    @property
    def template_len(self) -> int:
        return len(self.ids)

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        if self.pos >= len(self.ids):
            self._new_template()
        i = self.ids[self.pos]
        self.pos += 1
        rate = rate_from_temperature(temperature)
        g = self.gen
        cands = g.candidates.get(i)
        p = 1.0
        if cands is None and i in g.unknown and g.reservoir:
            cands = g.reservoir
        if cands:
            u = self.rng.random()  # drawn for every replaceable word, so rate changes shift no later choice
            pick = self.rng.randrange(len(cands))
            if u < rate:
                word = cands[pick]
                p = rate / len(cands)
                if i in g.unknown:
                    word_text = match_case(g.vocab[i], g.vocab[word].lower())
                    return Token(self._piece_text(word_text), p, temperature)
                i = word
            else:
                p = 1.0 - rate
        return Token(self._piece_text(g.vocab[i]), max(p, 1e-6), temperature)

    def _piece_text(self, word: str) -> str:
        tok = self.gen.tok
        text = tok.piece(tok.index[word], self.tail) if word in tok.index else (word if not self.tail or self.tail.endswith("\n") else " " + word)
        self.tail = (self.tail + text)[-8:]
        return text


class SpreederGenerator:
    word_tokens = True

    def __init__(self, name: str, card: dict, arrays: dict) -> None:
        self.name = name
        self.kind = "spreeder"
        self.card = card
        self.vocab: list[str] = card["vocab"]
        self.tok = WordTokenizer(self.vocab)
        self.templates = arrays["templates"].tolist()
        self.template_offsets = arrays["template_offsets"].tolist()
        keys, offs, ids = arrays["cand_keys"].tolist(), arrays["cand_offsets"].tolist(), arrays["cand_ids"].tolist()
        self.candidates = {k: ids[offs[j]:offs[j + 1]] for j, k in enumerate(keys)}
        self.reservoir = arrays["reservoir"].tolist()
        self.unknown = frozenset(arrays["unknown"].tolist())

    def start(self, seed: int, prompt: str = "") -> SpreederStream:
        return SpreederStream(self, seed, prompt)

    def start_batch(self, seeds: list[int], prompts: list[str] | None = None) -> SequentialBatch:
        return SequentialBatch([self.start(s) for s in seeds])


def load_spreeder(model_dir: Path, card: dict) -> SpreederGenerator:
    path = model_dir / "model.safetensors"
    if not path.exists():
        raise ModelFileError(f"{path}: missing (Spreeder's templates and replacements)")
    try:
        arrays = load_file(str(path))
        gen = SpreederGenerator(model_dir.name, card, arrays)
        n = len(gen.vocab)
        for name in ("templates", "cand_ids", "reservoir"):
            a = arrays[name]
            if len(a) and (int(a.max()) >= n or int(a.min()) < 0):
                raise ValueError(f"{name} points outside the vocabulary")
        if len(gen.template_offsets) < 2:
            raise ValueError("no templates")
    except Exception as e:
        raise ModelFileError(f"{path}: unreadable or does not match model.json ({e})") from None
    return gen


def bench_case(gen: SpreederGenerator, seconds: float) -> dict:
    """Poems per second for 12-line poems at rate 0.5, through the stream interface."""
    from performance.textgen.lengths import LengthCounter, LengthRule

    rule = LengthRule("lines", LINES_PER_TEMPLATE)
    n, seed, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        s = gen.start(seed)
        counter = LengthCounter(rule, True)
        while not counter.feed(s.next(0.5).text):
            pass
        n += 1
        seed += 1
    rate = n / (time.perf_counter() - t0)
    return {"model": gen.name, "kind": "spreeder", "poems_per_s": round(rate, 1), "lines_per_poem": LINES_PER_TEMPLATE,
            "rate": 0.5}
