"""Words from the audience (a setlist's [audience]): the operator's switch and the word itself.

`/lectern/audience 0|1` is an ordinary command (OSC, keys, console, the operator's remote).
`/lectern/audience/word W` is network=False in the command table: OSC, MIDI and the operator's
remote cannot send it; it arrives only from the audience page's own path (the remote's process
sends ("word", ...) up its pipe, remote_process.py makes it a Command of source "audience"); the
console and the timetable refuse network=False names too, and no key makes one. Here it is checked once more with the same rule as the page's
server (show/audience_settings.py: letters, length, the setlist's and the scene's blocklist, the
offered choices) and rate-limited on the engine's clock (exact under the fake clock), then kept
to seed the next poem as its prompt, once. Events: `audience_word` {word, by} when one is taken,
`audience_seed` {word, poem} when a poem starts from it, `audience` {on} when the switch moves.
"""

from __future__ import annotations

from typing import Any

from performance.engine.commands import Result, handles
from performance.protocol.commands import Command
from performance.show.audience_settings import RateLimit, normal, refusal

Engine = Any  # named without importing core.py (which imports this module): no circle


@handles("audience")
def audience_switch(e: Engine, now: float, cmd: Command) -> Result:
    """The operator turns the audience page's words off or on, live."""
    settings = e.setlist.audience
    if settings is None:
        return False, "audience: this setlist has no [audience] table (words = true turns the page on)"
    e.audience_on = bool(int(cmd.args[0]))
    if not e.audience_on:
        e.audience_word = None  # off means off: a word waiting for the next poem is dropped too
    e._emit(now, "audience", on=e.audience_on)
    return True, f"audience words {'on' if e.audience_on else 'off'}"


@handles("audience/word")
def audience_word(e: Engine, now: float, cmd: Command) -> Result:
    """A word from the audience: checked, counted, kept for the next poem."""
    settings = e.setlist.audience
    if settings is None or not e.audience_on:
        return False, "audience words are off just now; thank you"
    word = cmd.args[0]
    why = refusal(word, settings.max_chars, settings.blocklist | e.scene.blocklist.words,
                  settings.choices if settings.offer else ())
    if why is not None:
        return False, why
    lim = e.audience_limit
    if lim is None or (lim.per_client, lim.total) != (settings.per_client_per_minute, settings.total_per_minute):
        e.audience_limit = RateLimit(settings.per_client_per_minute, settings.total_per_minute)
    client = cmd.sender[0] if cmd.sender else cmd.source
    why = e.audience_limit.take(str(client), now)
    if why is not None:
        return False, why
    e.audience_word = normal(word)
    e._emit(now, "audience_word", word=e.audience_word, by=cmd.source)
    return True, f"thank you: {e.audience_word!r} may begin the next poem"


def take_word(e: Engine, now: float, prompt: str) -> str:
    """The prompt of the poem opening now: the waiting audience word (used once), else `prompt`."""
    word, e.audience_word = e.audience_word, None
    if word is None:
        return prompt
    e._emit(now, "audience_seed", word=word, poem=e.poem_counter + 1)
    return word


def audience_report(e: Engine) -> dict:
    """The Snapshot's audience field: "" (no [audience]), "on" or "off"."""
    if e.setlist.audience is None:
        return {"audience": ""}
    return {"audience": "on" if e.audience_on else "off"}
