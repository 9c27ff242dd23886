"""English inflection for Spreeder's replacements: plural nouns, verb person and tense (with the
archaic -eth/-est of the seeds' older poems), adjective degree, capitals and a/an.

Rules, not a lexicon: irregular forms come in from WordNet's *.exc files (`irregular`), and a
form these rules cannot make reliably (a long adjective's "-er") is refused by `can_inflect`.
"""

from __future__ import annotations

import re

_VOWELS = frozenset("aeiou")
_VOWEL_GROUP = re.compile(r"[aeiouy]+")
FORMS = ("base", "plural", "third", "past", "gerund", "eth", "est", "comparative", "superlative")


def syllables(word: str) -> int:
    """A rough syllable count (vowel groups, a silent final e dropped)."""
    w = word.lower()
    n = len(_VOWEL_GROUP.findall(w))
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and n > 1:
        n -= 1
    return max(1, n)


def _doubles(w: str) -> bool:
    """One-syllable consonant-vowel-consonant words double their last letter: stop → stopped
    (but open → opened, and never w, x or y)."""
    return (len(w) >= 3 and w[-1] not in _VOWELS | set("wxy") and w[-2] in _VOWELS and w[-3] not in _VOWELS
            and len(_VOWEL_GROUP.findall(w)) == 1)


def plural(noun: str, irregular: dict[str, str] | None = None) -> str:
    """dog → dogs, box → boxes, city → cities; `irregular` first (goose → geese)."""
    if irregular and noun in irregular:
        return irregular[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in _VOWELS:
        return noun[:-1] + "ies"
    return noun + "s"


def third_person(verb: str) -> str:
    """walk → walks, kiss → kisses, fly → flies; be, have, do, go by heart."""
    return {"be": "is", "have": "has", "do": "does", "go": "goes"}.get(verb, plural(verb))


def past(verb: str, irregular: dict[str, str] | None = None) -> str:
    """walk → walked, love → loved, carry → carried, stop → stopped; `irregular` first (go → went)."""
    if irregular and verb in irregular:
        return irregular[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and len(verb) > 1 and verb[-2] not in _VOWELS:
        return verb[:-1] + "ied"
    if _doubles(verb):
        return verb + verb[-1] + "ed"
    return verb + "ed"


def gerund(verb: str) -> str:
    """make → making, run → running, die → dying, see → seeing."""
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and len(verb) > 2:
        return verb[:-1] + "ing"
    if _doubles(verb):
        return verb + verb[-1] + "ing"
    return verb + "ing"


def _archaic(verb: str, ending: str) -> str:
    """love → loveth / lovest, walk → walketh / walkest, run → runneth / runnest."""
    if verb.endswith("e"):
        return verb + ending[1:]
    if _doubles(verb):
        return verb + verb[-1] + ending
    return verb + ending


def _degree(adj: str, ending: str) -> str:
    """dark → darker / darkest, pale → paler, happy → happier, big → bigger."""
    if adj.endswith("e"):
        return adj + ending[1:]
    if adj.endswith("y") and len(adj) > 2 and adj[-2] not in _VOWELS:
        return adj[:-1] + "i" + ending
    if _doubles(adj):
        return adj + adj[-1] + ending
    return adj + ending


def can_inflect(base: str, form: str) -> bool:
    """Whether the rules make a word English in `form`: "-er"/"-est" only on short adjectives
    (darker, happier; never beautifuler)."""
    if form in ("comparative", "superlative"):
        n = syllables(base)
        return n == 1 or (n == 2 and base.endswith("y"))
    return True


def inflect(base: str, form: str, irregular: dict[str, dict[str, str]] | None = None) -> str:
    """Put `base` into `form` (one of FORMS). `irregular` maps "plural"/"past" to {base: form}."""
    irregular = irregular or {}
    if form == "plural":
        return plural(base, irregular.get("plural"))
    if form == "third":
        return third_person(base)
    if form == "past":
        return past(base, irregular.get("past"))
    if form == "gerund":
        return gerund(base)
    if form in ("eth", "est"):
        return _archaic(base, form)
    if form == "comparative":
        return _degree(base, "er")
    if form == "superlative":
        return _degree(base, "est")
    return base


def match_case(template: str, word: str) -> str:
    """Give `word` the capitalisation of `template`: Title, UPPER or lower."""
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def form_of(word: str, base: str, pos: str) -> str | None:
    """Which regular form `word` is of `base` as `pos` ("n", "v", "a", "r"); None when the rules
    do not make it (irregular forms are found from WordNet's exception lists instead)."""
    w = word.lower()
    if w == base:
        return "base"
    if pos == "n" and w == plural(base):
        return "plural"
    if pos == "v":
        for form in ("third", "past", "gerund", "eth", "est"):
            if w == inflect(base, form):
                return form
    if pos == "a":
        for form in ("comparative", "superlative"):
            if w == inflect(base, form) and can_inflect(base, form):
                return form
    return None


_AN_EXCEPTIONS = ("hour", "honest", "honour", "honor", "heir")
_A_EXCEPTIONS = ("uni", "use", "usu", "eu", "one", "once", "ewe", "ur")


def article_for(word: str) -> str:
    """"a" or "an" before `word` (by its sound, roughly: an hour, a unicorn)."""
    w = word.lower()
    if w.startswith(_AN_EXCEPTIONS):
        return "an"
    if w.startswith(_A_EXCEPTIONS):
        return "a"
    return "an" if w[:1] in _VOWELS else "a"
