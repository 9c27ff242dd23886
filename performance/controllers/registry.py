"""Every controller Lectern has, in one list: add yours with one line (docs/architecture.md).

The runtime asks each class for its command-line options, checks them before the show, builds
the enabled ones for the session and drives them through `Controllers` below.
"""

from __future__ import annotations

import argparse
import logging

from performance.controllers import auth
from performance.controllers.base import Context, Controller, Unavailable
from performance.controllers.console import Console
from performance.controllers.inbox import Inbox
from performance.controllers.keyboard import Keyboard
from performance.controllers.link import LinkControl
from performance.controllers.network import MidiControl, OscControl, RemoteControl
from performance.controllers.schedule import Schedule
from performance.controllers.watch import Watch
from performance.protocol.commands import Command
from performance.protocol.snapshot import Snapshot

log = logging.getLogger("lectern.controllers")

CONTROLLERS: list[type[Controller]] = [
    Keyboard,
    OscControl,
    MidiControl,
    RemoteControl,
    Schedule,
    Console,
    Watch,
    LinkControl,
]


def add_controller_arguments(parser: argparse.ArgumentParser) -> None:
    """Each controller's own options on `run.py play`, and the one flag that opens them to the network."""
    for cls in CONTROLLERS:
        cls.add_arguments(parser)
    parser.add_argument(auth.ALLOW_FLAG, action="store_true",
                        help="listen beyond loopback (OSC, console) without a passcode: anyone on the network may steer")


def check_controller_args(args: argparse.Namespace, setlist) -> str | None:
    """One line saying what is wrong with the controller options (before the show), or None."""
    problem = auth.open_network_refusal(
        osc_host=getattr(args, "osc_host", None) if getattr(args, "osc_port", 0) else None,
        osc_passcode=getattr(args, "osc_passcode", None),
        osc_allow=getattr(args, "osc_allow", None),
        remote_host=getattr(args, "remote_host", None) if getattr(args, "remote", None) is not None else None,
        allow_open=bool(getattr(args, "allow_open_network", False)))
    if problem:
        return problem
    for cls in CONTROLLERS:
        problem = cls.check_args(args, setlist)
        if problem:
            return problem
    return None


class Controllers:
    """The session's enabled controllers, as one: started, fed state, polled, asked, stopped."""

    def __init__(self, args: argparse.Namespace, ctx: Context) -> None:
        ctx.extras.setdefault("token", auth.new_token())  # one session token: the remote's QR code, the console
        self.ctx = ctx
        self.all: list[Controller] = [c for c in (cls.from_args(args, ctx) for cls in CONTROLLERS) if c is not None]
        self.warnings: list[str] = []

    def start(self, inbox: Inbox) -> None:
        """Start each; one that cannot is left out with one line (the show goes on)."""
        running = []
        for c in self.all:
            try:
                c.start(inbox)
                running.append(c)
            except Unavailable as e:
                self.warnings.append(str(e))
        self.all = running

    def get(self, name: str) -> Controller | None:
        return next((c for c in self.all if c.name == name), None)

    def poll(self, now: float, events: list) -> None:
        for c in self.all:
            c.poll(now, events)

    def answer(self, cmd: Command) -> tuple[bool, str]:
        """A controller-owned command (learn): the controller that takes it answers."""
        for c in self.all:
            got = c.answer(cmd)
            if got is not None:
                return got
        return False, f"{cmd.name}: no controller takes it here (learn needs --midi PORT)"

    def observe(self, cmd: Command) -> None:
        for c in self.all:
            c.observe(cmd)

    def on_state(self, snap: Snapshot) -> None:
        for c in self.all:
            try:
                c.on_state(snap)
            except Exception:  # one controller's feedback must not cost the others theirs
                log.exception("controller %s: state not taken", c.name)

    def status(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for c in self.all:
            out.update(c.status())
        return out

    def announce(self) -> str:
        return "".join(c.announce() for c in self.all)

    def private_status(self) -> dict[str, str]:
        """The ways in, with their secrets: the operator view only."""
        out: dict[str, str] = {}
        for c in self.all:
            out.update(c.private_status())
        return out

    def stop(self) -> None:
        for c in reversed(self.all):
            try:
                c.stop()
            except Exception:
                log.exception("stopping controller %s failed", c.name)
