"""What a controller is: anything that turns a person, a device or a schedule into `Command`s.

A controller is one class implementing `Controller`, registered with one line in registry.py.
The runtime builds the enabled ones from the command line (`from_args`), starts each with the
one inbox, hands each state `Snapshot` to `on_state` (on the frame thread: store it, wake your
own thread, never block), asks `status()` for the operator view, and stops them at the end.
Commands go through `performance.protocol.commands.validate` before they reach the inbox, so a
controller never restates what a command means. docs/architecture.md: "Adding a controller".
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, ClassVar

from performance.controllers.inbox import Inbox
from performance.protocol.commands import Command
from performance.protocol.snapshot import Snapshot


class Unavailable(Exception):
    """A controller could not start (a port taken, a device missing): one line, the show goes on."""


@dataclass
class Context:
    """What the runtime tells controllers about the session they join."""

    setlist: Any  # show.config.Setlist
    session_dir: Any  # pathlib.Path: transcripts, logs, learned MIDI bindings
    clock: Any = None  # show.clock.MonotonicClock: engine time for timed commands
    quiet: bool = False  # no operator view: announce on stderr instead
    extras: dict = field(default_factory=dict)  # what one controller lends another (the remote's token)

    def scene_count(self) -> int:
        return len(self.setlist.entries)

    def scene_names(self) -> list[str]:
        return [e.scene.name for e in self.setlist.entries]


class Controller:
    """The seam every controller implements (all methods but `from_args` have defaults)."""

    name: ClassVar[str] = "controller"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this controller's options to `run.py play`."""

    @classmethod
    def check_args(cls, args: argparse.Namespace, setlist: Any) -> str | None:
        """One line saying what is wrong with this controller's options (before the show), or None."""
        return None

    @classmethod
    def from_args(cls, args: argparse.Namespace, ctx: Context) -> Controller | None:
        """The controller the options ask for, or None when it is not wanted this session."""
        raise NotImplementedError

    def start(self, inbox: Inbox) -> None:
        """Begin: commands go to `inbox` (validated), from this controller's own thread or `poll`."""

    def poll(self, now: float, events: list) -> None:
        """Main-thread controllers (keyboard, schedule) do their work here once a frame."""

    def on_state(self, snap: Snapshot) -> None:
        """The latest state; called on the frame thread: store it, never block."""

    def answer(self, cmd: Command) -> tuple[bool, str] | None:
        """Handle a controller-owned command (e.g. MIDI learn); None when it is not this one's."""
        return None

    def observe(self, cmd: Command) -> None:
        """See every command on its way to its owner (MIDI learn binds the next one it sees)."""

    def status(self) -> dict[str, str]:
        """A few words for the operator view and the monitor (shown as key: value)."""
        return {}

    def announce(self) -> str:
        """What the operator must see once at start (an address, a QR code); "" for nothing."""
        return ""

    def private_status(self) -> dict[str, str]:
        """Lines for the operator's own screens only (a way in with its token), never for the network."""
        return {}

    def stop(self) -> None:
        """End: close ports and threads (within about a second)."""
