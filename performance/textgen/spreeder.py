"""Spreeder: template poems from a corpus whose content words are swapped for WordNet relatives.

`train_spreeder` cuts the corpus into 12-line template poems (each begins where a sentence or
stanza begins and ends where one ends), finds for every content word its synonyms, hypernyms and
hyponyms in WordNet (Debian's wordnet-base files, read by wordnet.py), inflects them like the
original (plural nouns; verb person, tense and archaic -eth/-est; adjective degree; capitals)
and stores the lot as int32 arrays, so sampling needs no WordNet at all and loading runs no code.
Words WordNet does not know (archaic spellings like "impos’d", names like "Silvanus") are
replaced from a reservoir of such corpus words of the same shape (same ending, or names by
names), so "-’d" stays past and a name stays a name.

Temperature is the replacement rate, 0..1: 0 = the template itself, exactly; 1 = every
replaceable word. A stream reads its temperature as that rate, clamped (`rate_from_temperature`),
so `run.py sample spreeder --temperature 0.5` and a scene's temperature 0.5 both mean rate 0.5.
The live OSC temperature (0..3, the contract's range for every kind) is divided by 3 by the
generator worker before it reaches the stream (performance/generator.py, UNIT_SCALE_KINDS).

Each replaceable word of a template draws its chance and its pick when the template starts,
whatever the rate, so the same seed gives the same poem and a higher rate only adds replacements
(the words replaced at 0.3 are replaced the same way at 0.9). "a"/"an" before a replaced word
follows the new word's sound.
"""

from __future__ import annotations

import random
import re
import time
import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from performance import __version__
from performance.textgen.base import ModelFileError, SequentialBatch, Token
from performance.textgen.cards import write_card
from performance.textgen.classic_text import verse_text
from performance.textgen.corpus import Corpus
from performance.textgen.inflect import article_for, can_inflect, form_of, inflect, match_case
from performance.textgen.lengths import LengthCounter, LengthRule
from performance.textgen.wordnet import DEFAULT_DIR, WordNet

LINES_PER_TEMPLATE = 12
# words, numbers, single punctuation marks and line breaks; what lies between them (spaces,
# indentation) is kept as the token's leading "gap", so a template joins back into itself exactly
_TOKEN_RE = re.compile(r"\n|[^\W\d_]+(?:['’][^\W\d_]+)*|\d+|[^\w\s]|_", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?;:][\"'”’)\]]*$")
_APOSTROPHES = str.maketrans("", "", "'’")
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
like unto whilst whence wherefore thir hee mee shee wee yee tis twas nor yon yonder thereof whereof
wherein whereon whereby whereat wherewith thereon therefore toward towards beneath beside besides behind
beyond across along around amid amidst athwart betwixt twixt nigh though although unless because whether
herein hither thither else elsewhere perhaps whereas albeit
""".split())
def rate_from_temperature(t: float) -> float:
    """A stream's temperature read as Spreeder's replacement rate: t clamped to 0..1.

    (The OSC temperature 0..3 is divided by 3 before it becomes a stream's temperature.)"""
    return min(1.0, max(0.0, float(t)))


# reservoir classes by ending: an unknown "-ed" word is replaced by another, so the tense stays
_SHAPES = ("ing", "eth", "est", "ed", "ly", "st", "s")


def _shape(word: str, names: set[str]) -> str:
    """The reservoir class of a word WordNet does not know. An elided word keeps its apostrophe
    and what follows it ("impos’d" → "'d", "heav’n" → "'n"), so punctuation survives; then
    "name", an ending from _SHAPES, or ""."""
    low = word.lower().replace("’", "'")
    if "'" in low:
        tail = low.rsplit("'", 1)[1]
        return "'" + (tail if len(tail) <= 3 else "")
    if low in names:
        return "name"
    for ending in _SHAPES:
        if low.endswith(ending) and len(low) > len(ending) + 2:
            return ending
    return ""


def _reservoir_form(word: str) -> str:
    """How the reservoir stores a word: lowercase, one apostrophe ("fall'n" and "fall’n" are one)."""
    return word.lower().replace("'", "’")


def _templates(text: str) -> list[str]:
    """Non-overlapping runs of 12 verse lines (stanza breaks inside kept) that start where a
    stanza or sentence starts and end where one ends, so a template reads as a poem."""
    lines = verse_text(text).split("\n")[:-1]
    n = len(lines)

    def fresh(i: int) -> bool:
        return i == 0 or not lines[i - 1] or bool(_SENTENCE_END.search(lines[i - 1]))

    out, i = [], 0
    while i < n:
        if not lines[i] or not fresh(i):
            i += 1
            continue
        j, count = i, 0
        while j < n and count < LINES_PER_TEMPLATE:
            count += bool(lines[j])
            j += 1
        if count < LINES_PER_TEMPLATE:
            break
        if _SENTENCE_END.search(lines[j - 1]) or j == n or not lines[j]:
            out.append("\n".join(lines[i:j]) + "\n")
            i = j
        else:
            i += 1
    return out


def _split(template: str) -> tuple[list[str], list[str]]:
    """(gaps, tokens): gaps[k] is the text between token k-1 and token k."""
    gaps, toks, end = [], [], 0
    for m in _TOKEN_RE.finditer(template):
        gaps.append(template[end:m.start()])
        toks.append(m.group())
        end = m.end()
    return gaps, toks


def _readings(low: str, wn) -> dict[str, tuple[str, str, int]]:
    """{pos: (base, form, senses)} for every inflectable reading of a lowercase word. Irregular
    forms come from WordNet's exception lists; archaic -eth/-est verbs ("walketh", "lovest") are
    recognised here because morphy does not know them."""
    out = {}
    for pos in ("n", "v", "a", "r"):
        base = wn.morphy(low, pos)
        reading = None
        if base is not None:
            form = form_of(low, base, pos)
            if form is None and base in wn.exceptions[pos].get(low, []) and pos in ("n", "v"):
                form = "plural" if pos == "n" else "past"
            if form is not None:
                reading = (base, form)
        if pos == "v" and base is None and low.endswith(("eth", "est")):
            stem = low[:-3]
            for b in (stem, stem + "e", stem[:-1]):
                if b in wn.index["v"] and form_of(low, b, "v") in ("eth", "est"):
                    reading = (b, low[-3:])
                    break
        if reading is not None:
            out[pos] = (*reading, len(wn.index[pos].get(reading[0], [])))
    return out


# The word before says which reading of an ambiguous word is meant ("the ground" is a noun, "to
# ground" a verb); without such a hint the reading with most WordNet senses is taken.
_NOUN_AFTER = frozenset("""a an the his her its my thy thine our your their thir this that these those every each
no of in on from with by some any such""".split())
_VERB_AFTER = frozenset("""to i he she we they thou ye you will shall can may might must would should could do does
did doth dost hath hast have has had not""".split())
SLOT_DEFAULT, SLOT_NOUN, SLOT_VERB = 0, 1, 2


def context_slot(prev: str, word: str, following: str) -> int:
    """Which reading the tokens around a word ask for: SLOT_NOUN, SLOT_VERB or SLOT_DEFAULT.
    After a determiner it is a noun only when no content word follows ("the ground:" but "a black
    bituminous gurge" keeps its likeliest, adjective, reading); a capital inside a line (Milton's
    "the swift Stag") also marks a noun."""
    p = prev.lower()
    if p in _VERB_AFTER:
        return SLOT_VERB
    if word[:1].isupper() and prev[:1].isalpha():
        return SLOT_NOUN
    if p in _NOUN_AFTER and not (following[:1].isalpha() and following.lower() not in STOPWORDS):
        return SLOT_NOUN
    return SLOT_DEFAULT


def _irregular_forms(wn) -> dict[str, dict[str, str]]:
    """WordNet's exception lists turned round: base -> irregular plural, base -> simple past."""
    irregular_plural: dict[str, str] = {}
    for form, bases in wn.exceptions["n"].items():
        for b in bases:
            irregular_plural.setdefault(b, form)
    irregular_past: dict[str, str] = {}
    for form, bases in sorted(wn.exceptions["v"].items()):
        for b in bases:
            if not form.endswith("n"):  # prefer "went" over "gone": the simple past
                irregular_past.setdefault(b, form)
    return {"plural": irregular_plural, "past": irregular_past}


def _word_stats(split: list[tuple[list[str], list[str]]]) -> tuple[Counter, set[str], set[str]]:
    """The templates' word counts, the words seen in lowercase, and (lowercased) the words seen
    capitalised where no line or sentence starts."""
    counts = Counter(w for _, toks in split for w in toks)
    lowercase_seen = {w for w in counts if w.islower()}
    # capitalised where no line or sentence starts: a name, unless it is also seen in lowercase
    midline_capital = {w.lower() for _, toks in split for prev, w in zip(toks, toks[1:], strict=False)
                       if w[:1].isupper() and prev not in ("\n", ".", "!", "?", '"', "“", "‘", "'")}
    return counts, lowercase_seen, midline_capital


class _Vocab:
    """The model's words: the templates' words sorted, then each new word (an inflected relative,
    a reservoir word) appended as it is first met, so ids are stable from one training to the next."""

    def __init__(self, words) -> None:
        self.words: list[str] = sorted(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    def id(self, w: str) -> int:
        if w not in self.index:
            self.index[w] = len(self.words)
            self.words.append(w)
        return self.index[w]


def _replacements(counts: Counter, lowercase_seen: set[str], wn, irregular: dict,
                  vocab: _Vocab) -> tuple[dict[int, list[int]], dict[tuple[int, int], list[int]], list[str]]:
    """For every content word: its WordNet relatives, inflected like it, under its likeliest
    reading; under its other noun or verb reading where the context asks for that; and the words
    WordNet does not know (archaisms, names), which the reservoir replaces."""
    def relatives(word: str, pos: str, base: str, form: str) -> list[int]:
        forms = [match_case(word, inflect(rel, form, irregular)) for rel in wn.related(base, pos)
                 if not (pos == "v" and rel == "be") and can_inflect(rel, form)]
        return [vocab.id(f) for f in dict.fromkeys(forms) if f != word]

    index = vocab.index
    candidates: dict[int, list[int]] = {}  # word id -> relatives under its likeliest reading
    by_context: dict[tuple[int, int], list[int]] = {}  # (word id, slot) -> relatives, where that differs
    unknown_words: list[str] = []
    for word in sorted(counts):
        low = word.lower()
        plain = low.translate(_APOSTROPHES)
        if not plain.isalpha() or low in STOPWORDS or plain in STOPWORDS or len(plain) < 3:
            continue
        head, _, rest = low.replace("’", "'").partition("'")
        if rest and (head in STOPWORDS or rest == "s"):
            continue  # who'll, maid's: a contraction or a possessive, no word to swap
        capital_only = low not in lowercase_seen
        readings = {} if "'" in low or "’" in low else _readings(low, wn)
        if not readings:
            if not any(wn.morphy(low, p) for p in ("n", "v", "a", "r")) or capital_only:
                unknown_words.append(word)
            continue
        default = max(readings, key=lambda p: (readings[p][2], p == "n"))
        if capital_only and readings[default][1] == "base" and wn.is_proper(low, default):
            unknown_words.append(word)  # Adam, Satan: a name, replaced by names from the reservoir
            continue
        base, form, _ = readings[default]
        forms = relatives(word, default, base, form)
        if forms:
            candidates[index[word]] = forms
        for slot, pos in ((SLOT_NOUN, "n"), (SLOT_VERB, "v")):
            if pos in readings and pos != default:
                alt = relatives(word, pos, *readings[pos][:2])
                if alt:
                    by_context[(index[word], slot)] = alt
    return candidates, by_context, unknown_words


def _reservoir(unknown_words: list[str], lowercase_seen: set[str], midline_capital: set[str],
               vocab: _Vocab) -> dict[str, Any]:
    """The unknown words grouped by shape (_shape): the classes, their word ids one class after
    another with offsets, and each unknown word's class."""
    names = {w.lower() for w in unknown_words if w.lower() not in lowercase_seen and w.lower() in midline_capital}
    by_shape: dict[str, set[str]] = {}
    for w in unknown_words:
        by_shape.setdefault(_shape(w, names), set()).add(_reservoir_form(w))  # the stream restores case and apostrophe
    # a reservoir class with one word could only swap a word for itself: fold it into the
    # general class ("'" for elided words, "" for the rest)
    for s in [s for s in sorted(by_shape) if s not in ("", "'") and len(by_shape[s]) < 2]:
        by_shape.setdefault("'" if s.startswith("'") else "", set()).update(by_shape.pop(s))
    shapes = sorted(by_shape)
    class_of = {w: k for k, s in enumerate(shapes) for w in by_shape[s]}
    reservoir = [vocab.id(w) for s in shapes for w in sorted(by_shape[s])]
    offsets = np.cumsum([0] + [len(by_shape[s]) for s in shapes]).astype(np.int32)
    shape_of = {vocab.index[w]: class_of[_reservoir_form(w)] for w in unknown_words}
    return {"shapes": shapes, "ids": reservoir, "offsets": offsets, "shape_of": shape_of}


def _spreeder_arrays(split: list[tuple[list[str], list[str]]], index: dict[str, int],
                     candidates: dict[int, list[int]], by_context: dict[tuple[int, int], list[int]],
                     reservoir: dict[str, Any]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Everything sampling needs as flat int32 arrays with offsets (model.safetensors), and the
    gap strings the template_gaps array indexes."""
    ids = [[index[w] for w in toks] for _, toks in split]
    gap_vocab = sorted({g for gaps, _ in split for g in gaps})
    gap_index = {g: i for i, g in enumerate(gap_vocab)}
    keys = sorted(candidates)
    ctx_keys = sorted(by_context)
    shape_of = reservoir["shape_of"]
    unknown = sorted(shape_of)
    arrays = {
        "templates": np.array([i for t in ids for i in t], dtype=np.int32),
        "template_gaps": np.array([gap_index[g] for gaps, _ in split for g in gaps], dtype=np.int32),
        "template_offsets": np.cumsum([0] + [len(t) for t in ids]).astype(np.int32),
        "cand_keys": np.array(keys, dtype=np.int32),
        "cand_offsets": np.cumsum([0] + [len(candidates[k]) for k in keys]).astype(np.int32),
        "cand_ids": np.array([c for k in keys for c in candidates[k]], dtype=np.int32),
        "ctx_keys": np.array(ctx_keys, dtype=np.int32).reshape(-1, 2),
        "ctx_offsets": np.cumsum([0] + [len(by_context[k]) for k in ctx_keys]).astype(np.int32),
        "ctx_ids": np.array([c for k in ctx_keys for c in by_context[k]], dtype=np.int32),
        "reservoir": np.array(reservoir["ids"], dtype=np.int32),
        "reservoir_offsets": reservoir["offsets"],
        "unknown": np.array(unknown, dtype=np.int32),
        "unknown_shape": np.array([shape_of[u] for u in unknown], dtype=np.int32),
    }
    return arrays, gap_vocab


def train_spreeder(corpus: Corpus, out_dir: Path, seed: int, wordnet_dir: Path | None = None) -> None:
    """Build templates, replacement candidates and the reservoir from `corpus` into `out_dir`.

    Needs the WordNet files (ModelFileError with the install line if they are missing);
    `wordnet_dir` overrides the default /usr/share/wordnet."""

    t0 = time.monotonic()
    wn = WordNet(wordnet_dir or DEFAULT_DIR)
    irregular = _irregular_forms(wn)

    templates = _templates(corpus.text)
    if not templates:
        raise ModelFileError(f"corpus {corpus.name}: no run of {LINES_PER_TEMPLATE} verse lines to use as a template")
    split = [_split(t) for t in templates]
    counts, lowercase_seen, midline_capital = _word_stats(split)
    vocab = _Vocab(counts)
    candidates, by_context, unknown_words = _replacements(counts, lowercase_seen, wn, irregular, vocab)
    folder = str(wn.folder)
    wn.close()
    reservoir = _reservoir(unknown_words, lowercase_seen, midline_capital, vocab)
    arrays, gap_vocab = _spreeder_arrays(split, vocab.index, candidates, by_context, reservoir)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(out_dir / "model.safetensors"))
    card = {"kind": "spreeder", "name": out_dir.name, "engine_version": __version__, "format": 2,
            "hyperparameters": {"lines_per_template": LINES_PER_TEMPLATE,
                                "relations": "synonyms, hypernyms, hyponyms, similar (first 2 senses, 16 per word)",
                                "reservoir_shapes": reservoir["shapes"]},
            "vocab": vocab.words, "vocab_size": len(vocab.words), "gaps": gap_vocab, "templates": len(templates),
            "replaceable_words": len(candidates), "context_readings": len(by_context),
            "reservoir_words": len(reservoir["ids"]), "corpus": corpus.card(),
            "wordnet": folder, "training_seconds": round(time.monotonic() - t0, 2), "device": "cpu",
            "date": datetime.now(UTC).isoformat(timespec="seconds"), "seed": seed,
            "temperature": "replacement rate 0..1 (the live OSC temperature 0..3 is divided by 3)"}
    write_card(out_dir, card)
    # the samples come from the model as saved, loaded the way the engine loads it
    gen = load_spreeder(out_dir, card)
    card["samples"] = {}
    for rate in (0.3, 0.6, 0.9):
        s = gen.start(seed)
        card["samples"][str(rate)] = "".join(s.next(rate).text for _ in range(s.template_len))
    write_card(out_dir, card)


class SpreederStream:
    """One template after another (chosen by the seed), its words swapped at the stream's rate."""

    def __init__(self, gen: SpreederGenerator, seed: int, prompt: str = "") -> None:
        self.gen = gen
        self.rng = random.Random(seed)
        self._new_template(gen.templates_for(prompt))

    def _new_template(self, choices: list[int] | None = None) -> None:
        g = self.gen
        k = choices[self.rng.randrange(len(choices))] if choices else self.rng.randrange(g.n_templates)
        a, b = g.template_offsets[k], g.template_offsets[k + 1]
        self.ids = g.templates[a:b]
        self.gaps = g.template_gaps[a:b]
        self.pos = 0
        # every replaceable word draws (chance, pick) now, whatever the rate: a rate change then
        # shifts no later choice, and a higher rate only adds replacements
        rng = self.rng
        self.draws: list[tuple[float, list[int], int, int] | None] = []
        words = ["\n", *(g.vocab[i] for i in self.ids), "\n"]
        for k, i in enumerate(self.ids):
            found = g.options(i, context_slot(words[k], words[k + 1], words[k + 2]))
            n = 0 if found is None else len(found[0]) - (found[1] >= 0)
            if n <= 0:
                self.draws.append(None)
                continue
            options, own = found
            u = rng.random()
            pick = rng.randrange(n)
            if 0 <= own <= pick:  # never the word itself
                pick += 1
            self.draws.append((u, options, pick, n))
        self.decided: dict[int, tuple[str, float]] = {}

    @property
    def template_len(self) -> int:
        """Tokens in the current template (one poem)."""
        return len(self.ids)

    def _word(self, k: int, rate: float) -> tuple[str, float]:
        """The word at template position k under `rate`, and the probability of that choice;
        decided once (an article may have looked ahead at it)."""
        hit = self.decided.get(k)
        if hit is not None:
            return hit
        g = self.gen
        original = g.vocab[self.ids[k]]
        draw = self.draws[k]
        if draw is None:
            out = (original, 1.0)
        else:
            u, options, pick, n = draw
            if u < rate:
                new = g.vocab[options[pick]]
                if self.ids[k] in g.unknown:  # reservoir words carry their own case: match this one's
                    new = match_case(original, new.lower())
                    if "’" in original or "'" in original:  # the template's apostrophe, not the donor's
                        new = new.replace("'", "’") if "’" in original else new.replace("’", "'")
                out = (new, rate / n)
            else:
                out = (original, 1.0 - rate)
        self.decided[k] = out
        return out

    def next(self, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Token:
        """The next token of the poem; temperature is the replacement rate (clamped to 0..1)."""
        if self.pos >= len(self.ids):
            self._new_template()
        k = self.pos
        self.pos += 1
        rate = rate_from_temperature(temperature)
        word, p = self._word(k, rate)
        low = word.lower()
        if (low == "a" or low == "an") and k + 1 < len(self.ids):
            following = self.gen.vocab[self.ids[k + 1]]
            if following[:1].isalpha() and article_for(following) == low:  # the template agreed: keep agreeing
                new = article_for(self._word(k + 1, rate)[0])
                word = match_case(word, new) if new != low else word
        return Token(self.gen.gap_vocab[self.gaps[k]] + word, max(p, 1e-9), temperature)


class SpreederGenerator:
    """A loaded Spreeder model: `start(seed, prompt)` opens a SpreederStream."""

    word_tokens = True

    def __init__(self, name: str, card: dict, arrays: dict[str, np.ndarray]) -> None:
        self.name = name
        self.kind = "spreeder"
        self.card = card
        self.vocab: list[str] = card["vocab"]
        self.gap_vocab: list[str] = card["gaps"]
        self.templates: list[int] = arrays["templates"].tolist()
        self.template_gaps: list[int] = arrays["template_gaps"].tolist()
        self.template_offsets: list[int] = arrays["template_offsets"].tolist()
        self.n_templates = len(self.template_offsets) - 1
        keys, offs, ids = arrays["cand_keys"].tolist(), arrays["cand_offsets"].tolist(), arrays["cand_ids"].tolist()
        self.candidates: dict[int, list[int]] = {k: ids[offs[j]:offs[j + 1]] for j, k in enumerate(keys)}
        c_keys, c_offs, c_ids = arrays["ctx_keys"].tolist(), arrays["ctx_offsets"].tolist(), arrays["ctx_ids"].tolist()
        self.by_context: dict[tuple[int, int], list[int]] = {
            (k[0], k[1]): c_ids[c_offs[j]:c_offs[j + 1]] for j, k in enumerate(c_keys)}
        self.reservoir: list[int] = arrays["reservoir"].tolist()
        r_offs = arrays["reservoir_offsets"].tolist()
        classes = [self.reservoir[r_offs[j]:r_offs[j + 1]] for j in range(len(r_offs) - 1)]
        self.unknown: dict[int, list[int]] = {
            u: classes[s] for u, s in zip(arrays["unknown"].tolist(), arrays["unknown_shape"].tolist(), strict=True)}
        # where a word stands in its own class, so a replacement never picks the word itself
        positions = [{self.vocab[w]: j for j, w in enumerate(c)} for c in classes]
        self.unknown_own: dict[int, int] = {
            u: positions[s].get(_reservoir_form(self.vocab[u]), -1)
            for u, s in zip(arrays["unknown"].tolist(), arrays["unknown_shape"].tolist(), strict=True)}
        self._by_word: dict[str, list[int]] | None = None

    def options(self, i: int, slot: int = SLOT_DEFAULT) -> tuple[list[int], int] | None:
        """What word id `i` may become after a word asking for `slot`: (its WordNet relatives, -1),
        or (its reservoir class, where the word itself stands in it, to be skipped; -1 if absent);
        None = kept as it is."""
        found = self.by_context.get((i, slot)) or self.candidates.get(i)
        if found:
            return found, -1
        cls = self.unknown.get(i)
        return (cls, self.unknown_own[i]) if cls else None

    def templates_for(self, prompt: str) -> list[int] | None:
        """Templates holding any word of `prompt` (case ignored); None = any template. A prompt
        no template shares a word with is set aside with one warning."""
        words = {w.lower() for w in _TOKEN_RE.findall(prompt) if w[:1].isalpha()}
        if not words:
            return None
        if self._by_word is None:  # built on first use: most shows never give Spreeder a prompt
            by_word: dict[str, set[int]] = {}
            offs = self.template_offsets
            for k in range(self.n_templates):
                for i in self.templates[offs[k]:offs[k + 1]]:
                    by_word.setdefault(self.vocab[i].lower(), set()).add(k)
            self._by_word = {w: sorted(ks) for w, ks in by_word.items()}
        found = sorted({k for w in words for k in self._by_word.get(w, ())})
        if not found:
            warnings.warn(f"prompt: no template holds any of {', '.join(sorted(words)[:8])}; "
                          "choosing among all templates", stacklevel=3)
            return None
        return found

    def start(self, seed: int, prompt: str = "") -> SpreederStream:
        """Open a stream; a prompt steers the choice of template toward ones holding its words."""
        return SpreederStream(self, seed, prompt)

    def start_batch(self, seeds: list[int], prompts: list[str] | None = None) -> SequentialBatch:
        """Independent streams stepped in turn."""
        prompts = prompts or [""] * len(seeds)
        return SequentialBatch([self.start(s, p) for s, p in zip(seeds, prompts, strict=True)])


def load_spreeder(model_dir: Path, card: dict) -> SpreederGenerator:
    """Load a Spreeder folder (model.json already read into `card`). Raises ModelFileError naming the file."""
    model_dir = Path(model_dir)
    card_path = model_dir / "model.json"
    for key in ("vocab", "gaps"):
        v = card.get(key)
        if not isinstance(v, list) or not v or not all(isinstance(w, str) for w in v):
            hint = " (an older Spreeder model: rebuild it with `run.py train CORPUS --kind spreeder`)" if key == "gaps" else ""
            raise ModelFileError(f"{card_path}: key '{key}' must be a non-empty list of strings{hint}")
    path = model_dir / "model.safetensors"
    if not path.exists():
        raise ModelFileError(f"{path}: missing (Spreeder's templates and replacements)")
    try:
        arrays = load_file(str(path))
        n, n_gaps = len(card["vocab"]), len(card["gaps"])
        for name, limit in (("templates", n), ("cand_ids", n), ("cand_keys", n), ("reservoir", n), ("unknown", n),
                            ("ctx_keys", n), ("ctx_ids", n), ("template_gaps", n_gaps)):
            a = arrays[name]
            if len(a) and (int(a.max()) >= limit or int(a.min()) < 0):
                raise ValueError(f"{name} points outside its table of {limit}")
        if arrays["template_gaps"].shape != arrays["templates"].shape:
            raise ValueError("template_gaps and templates differ in length")
        if arrays["ctx_keys"].ndim != 2 or len(arrays["ctx_keys"]) != len(arrays["ctx_offsets"]) - 1:
            raise ValueError("ctx_keys and ctx_offsets differ in length")
        for name, total in (("template_offsets", len(arrays["templates"])), ("cand_offsets", len(arrays["cand_ids"])),
                            ("ctx_offsets", len(arrays["ctx_ids"])),
                            ("reservoir_offsets", len(arrays["reservoir"]))):
            offs = arrays[name]
            if len(offs) < 1 or int(offs[0]) != 0 or int(offs[-1]) != total or bool((np.diff(offs) < 0).any()):
                raise ValueError(f"{name} do not cover their table")
        if len(arrays["template_offsets"]) < 2:
            raise ValueError("no templates")
        shapes = arrays["unknown_shape"]
        if len(shapes) != len(arrays["unknown"]) or (len(shapes) and int(shapes.max()) >= len(arrays["reservoir_offsets"]) - 1):
            raise ValueError("unknown_shape does not match the reservoir classes")
        gen = SpreederGenerator(model_dir.name, card, arrays)
    except Exception as e:
        raise ModelFileError(f"{path}: unreadable or does not match model.json ({e})") from None
    return gen


def bench_case(gen: SpreederGenerator, seconds: float) -> dict:
    """The contract's Spreeder case: poems per second, 12-line poems at rate 0.5, each from a new
    stream (a new seed) through the same interface and length counter the engine uses."""

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
    return {"model": gen.name, "kind": "spreeder", "poems_per_s": round(rate, 1),
            "lines_per_poem": LINES_PER_TEMPLATE, "rate": 0.5}


def train_from_args(corpus: Corpus, args: Any) -> str:
    """`run.py train --kind spreeder`: the corpus's lines and their WordNet replacements."""
    train_spreeder(corpus, args.out, args.seed)
    return f"wrote {args.out}"
