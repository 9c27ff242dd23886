"""The installation's schedule as a controller: opening hours and the setlist's [[at]] timetable.

Run on the frame thread once a frame with the engine's wall time (so --time-scale and
--start-wall cross closing time in a rehearsal): hours become `blackout`/`resume` under
--install, due [[at]] firings become their commands (a planned `restart` is the runtime's own).
"""

from __future__ import annotations

import argparse
import logging

from performance.controllers.base import Context, Controller
from performance.controllers.inbox import Inbox
from performance.protocol.commands import Command

log = logging.getLogger("lectern.schedule")


class Schedule(Controller):
    """Opening hours (installations only) and [[at]] firings, in the installation's time zone."""

    name = "schedule"

    def __init__(self, ctx: Context, install: bool) -> None:
        self.clock = ctx.clock
        self.hours = ctx.setlist.install
        self.install = install
        self.closed = False
        self.inbox: Inbox | None = None
        self.timetable = None
        if ctx.setlist.timetable:
            # lazy: `run.py --help` imports this module; what the command needs loads when it runs
            from performance.show.hours import local_zone
            from performance.show.timetable import Timetable

            zone = ctx.setlist.install.zone() if ctx.setlist.install else local_zone()
            self.timetable = Timetable(ctx.setlist.timetable, zone)
            # from the session's first moment (t = 0), not from when this controller was built: a
            # firing due during a slow start-up still fires (late), as it always has
            self.timetable.start(getattr(self.clock, "start_wall", None) or self.clock.wall())

    @classmethod
    def from_args(cls, args: argparse.Namespace, ctx: Context) -> Schedule | None:
        if not ctx.setlist.timetable and ctx.setlist.install is None:
            return None
        return cls(ctx, bool(getattr(args, "install", False)))

    def start(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def poll(self, now: float, events: list) -> None:
        if self.inbox is None:
            return
        wall = self.clock.wall()
        if self.hours is not None and self.install:  # a rehearsal plays whenever it is started
            is_open = self.hours.is_open(wall)
            if is_open == self.closed:
                self.closed = not is_open
                self.inbox.put_nowait(Command(f"/lectern/{'blackout' if self.closed else 'resume'}", source="schedule"))
        if self.timetable is not None:
            for f in self.timetable.tick(wall):
                if not (f.entry.open_only and self.closed):
                    self.inbox.put_nowait(f.command())

    def upcoming(self) -> tuple[str, ...]:
        """The next [[at]] firings, as the operator view and the monitor show them."""
        if self.timetable is None:
            return ()
        return tuple(f"{due:%a %H:%M:%S} {e.do}" for due, e in self.timetable.upcoming(self.clock.wall()))

    def next_change(self) -> str | None:
        """When the hours next open or close (ISO time), for status.json."""
        if self.hours is None or not hasattr(self.hours, "next_change"):
            return None
        try:
            return self.hours.next_change(self.clock.wall()).isoformat()
        except Exception:
            return None
