"""Commands that wait for their time (OSC bundle timetags): bounded, free while they wait.

Owned by the engine (its thread only). A heap ordered by due time, so a frame with nothing due costs
one comparison however many commands wait; bounded per sender and in total, so a flood of
future-dated bundles cannot grow memory or land thousands of commands on one frame; and `due()`
hands back at most a bounded number per call, so even a full queue falling due at once spreads over
frames. A command refused here is counted (per reason) and answered "error" by the caller.
"""

from __future__ import annotations

import heapq
from collections import Counter

from performance.protocol.commands import Command

MAX_WAITING = 256  # timed commands waiting in total ...
MAX_WAITING_PER_SENDER = 64  # ... and from one sender (IP address; keys and schedule share one slot)
MAX_DUE_PER_STEP = 16  # applied per engine step when due; the rest follow on the next frames


class DueQueue:
    """Timed commands in due order, bounded per sender and in total."""

    def __init__(self, total: int = MAX_WAITING, per_sender: int = MAX_WAITING_PER_SENDER,
                 per_step: int = MAX_DUE_PER_STEP) -> None:
        self.total, self.per_sender, self.per_step = total, per_sender, per_step
        self._heap: list[tuple[float, int, Command]] = []
        self._by_sender: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()  # reason ("full", "sender") -> commands refused

    def __len__(self) -> int:
        return len(self._heap)

    @staticmethod
    def _who(cmd: Command) -> str:
        return cmd.sender[0] if cmd.sender else cmd.source

    def push(self, cmd: Command) -> str | None:
        """Queue a command with a due time; None when queued, else why not (one line)."""
        who = self._who(cmd)
        if self._by_sender[who] >= self.per_sender:
            self.dropped["sender"] += 1
            return f"busy: {self.per_sender} timed commands from {who} already waiting"
        if len(self._heap) >= self.total:
            self.dropped["full"] += 1
            return f"busy: {self.total} timed commands already waiting"
        heapq.heappush(self._heap, (float(cmd.due or 0.0), cmd.id, cmd))
        self._by_sender[who] += 1
        return None

    def due(self, now: float) -> list[Command]:
        """The commands due at `now`, oldest due first, at most `per_step` of them."""
        out: list[Command] = []
        h = self._heap
        while h and h[0][0] <= now and len(out) < self.per_step:
            cmd = heapq.heappop(h)[2]
            who = self._who(cmd)
            self._by_sender[who] -= 1
            if self._by_sender[who] <= 0:
                del self._by_sender[who]
            out.append(cmd)
        return out
