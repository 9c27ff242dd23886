"""The one message type for a performer's (or the schedule's) intent.

Keyboard, OSC, MIDI, the browser remote and the installation schedule all produce `Command`s with
the OSC contract's addresses ("/lectern/go", "/lectern/temperature", ...). Producers validate and clamp; only the engine applies
them, on its own thread, and answers through `reply`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

PREFIX = "/lectern"
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Command:
    """A validated request to change the show.

    address: full address, e.g. "/lectern/temperature".
    args: validated and clamped arguments.
    source: "key" | "osc" | "schedule" | "midi" | "remote".
    sender: (ip, port) of an OSC sender, else None.
    due: engine time at which to apply it (an OSC bundle's timetag), None = at once.
    reply: called by the engine with (ok, detail) once applied or refused; None = nobody to tell.
    """

    address: str
    args: tuple = ()
    source: str = "key"
    sender: tuple[str, int] | None = None
    due: float | None = None
    reply: Callable[[bool, str], None] | None = field(default=None, compare=False, repr=False)
    received: float | None = field(default=None, compare=False)  # time.monotonic() when it arrived
    id: int = field(default_factory=lambda: next(_ids), compare=False)

    @property
    def name(self) -> str:
        """The address without the prefix: "temperature", "temperature/release", "go"."""
        return self.address[len(PREFIX) + 1:] if self.address.startswith(PREFIX + "/") else self.address
