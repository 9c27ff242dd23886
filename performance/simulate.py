"""Run a setlist on a fake clock with a synchronous generator: a whole set in milliseconds.

Used by tests (exact event times) and by anyone checking a setlist's timeline before a show.
The generator is infinitely fast here, so every time in the event list comes from the scene's
pacing alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from performance.engine import Engine
from performance.protocol.actions import Outbox
from performance.protocol.commands import Command
from performance.show.config import Setlist
from performance.worker.core import WorkerCore


def simulate(setlist: Setlist, until: float, *, dt: float = 1 / 60, session_seed: int = 1,
             loader: Callable[[str], object] | None = None,
             commands: Iterable[tuple[float, Command]] = (),
             on_outbox: Callable[[float, Outbox], None] | None = None) -> list[dict]:
    """Play `setlist` from 0 to `until` engine seconds; return every event in order."""
    events: list[dict] = []
    worker_out: list = []
    core = WorkerCore(worker_out.append, loader)
    engine = Engine(setlist, session_seed=session_seed)
    pending = sorted(commands, key=lambda tc: tc[0])

    def route(now: float, out: Outbox) -> None:
        events.extend(out.events)
        out.answer()  # as the runtime's router does
        if on_outbox:
            on_outbox(now, out)
        for msg in out.worker:
            core.handle(msg)
        core.pump()

    route(0.0, engine.start(0.0))
    steps = int(until / dt) + 1
    for i in range(0, steps + 1):
        now = min(until, i * dt)
        inbox: list = []
        while pending and pending[0][0] <= now:
            inbox.append(pending.pop(0)[1])
        for _ in range(1000):  # deliver what the worker wrote at this same instant
            inbox.extend(worker_out)
            worker_out.clear()
            route(now, engine.step(now, inbox))
            inbox = []
            if not worker_out:
                break
        if engine.state == "ended":
            break
    route(until, engine.end(min(until, steps * dt)))
    return events
