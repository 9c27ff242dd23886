"""English inflection for Spreeder's replacements: plural nouns, verb person and tense, capitals."""

from __future__ import annotations

_VOWELS = set("aeiou")


def _cvc(w: str) -> bool:
    """Short consonant-vowel-consonant words double their last letter: stop → stopped."""
    return len(w) >= 3 and len(w) <= 4 and w[-1] not in _VOWELS | set("wxy") and w[-2] in _VOWELS and w[-3] not in _VOWELS


def plural(noun: str, irregular: dict[str, str] | None = None) -> str:
    if irregular and noun in irregular:
        return irregular[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in _VOWELS:
        return noun[:-1] + "ies"
    return noun + "s"


def third_person(verb: str) -> str:
    return {"be": "is", "have": "has", "do": "does", "go": "goes"}.get(verb, plural(verb))


def past(verb: str, irregular: dict[str, str] | None = None) -> str:
    if irregular and verb in irregular:
        return irregular[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and len(verb) > 1 and verb[-2] not in _VOWELS:
        return verb[:-1] + "ied"
    if _cvc(verb):
        return verb + verb[-1] + "ed"
    return verb + "ed"


def gerund(verb: str) -> str:
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and len(verb) > 2:
        return verb[:-1] + "ing"
    if _cvc(verb):
        return verb + verb[-1] + "ing"
    return verb + "ing"


def inflect(base: str, form: str, irregular: dict[str, dict[str, str]] | None = None) -> str:
    """Put `base` into `form`: base | plural | third | past | gerund."""
    irregular = irregular or {}
    if form == "plural":
        return plural(base, irregular.get("plural"))
    if form == "third":
        return third_person(base)
    if form == "past":
        return past(base, irregular.get("past"))
    if form == "gerund":
        return gerund(base)
    return base


def match_case(template: str, word: str) -> str:
    """Give `word` the capitalisation of `template`: Title, UPPER or lower."""
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def form_of(word: str, base: str, pos: str) -> str | None:
    """Which regular form `word` is of `base` (None when irregular: those are left alone)."""
    w = word.lower()
    if w == base:
        return "base"
    if pos == "n" and w == plural(base):
        return "plural"
    if pos == "v":
        if w == third_person(base):
            return "third"
        if w == past(base):
            return "past"
        if w == gerund(base):
            return "gerund"
    return None
