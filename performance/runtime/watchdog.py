"""The worker's watchdog: a dead worker, or one that owes the stage tokens for too long, is
replaced, and the engine hears of it as a `WorkerRestarted` message in its inbox."""

from __future__ import annotations

import logging
import time

from performance.protocol.actions import WorkerRestarted

log = logging.getLogger("lectern.play")
STALL_S = 20.0  # a poem on stage that gets no token from the worker this long restarts the worker


class Watchdog:
    """Watches one GeneratorThread from the frame loop."""

    def __init__(self, worker, stall_s: float = STALL_S, clock=time.monotonic) -> None:
        self.worker = worker
        self.stall_s = stall_s
        self.clock = clock
        self.last_output = clock()
        self.errors: list[str] = []

    def check(self, awaiting_tokens: bool) -> WorkerRestarted | None:
        """Before this frame's worker output is read: restart a dead or stalled worker."""
        stalled = awaiting_tokens and self.clock() - self.last_output > self.stall_s
        if self.worker.alive() and not stalled:
            return None
        why = "stalled" if stalled else "died"
        log.error("generator worker %s; restarting it", why)
        self.errors.append(f"generator worker {why}; restarted")
        self.worker.restart()
        self.last_output = self.clock()
        return WorkerRestarted(why)

    def heard(self, got_output: bool, awaiting_tokens: bool) -> None:
        """After reading the worker's output: anything from it (or nothing owed) resets the clock."""
        if got_output or not awaiting_tokens:
            self.last_output = self.clock()
