"""The one inbox: a bounded queue of Commands that the frame loop drains once a frame.

A fader (MIDI CC, a remote's slider, OSC from TouchOSC) can send hundreds of values a second;
only the newest one the engine has not taken yet matters, so `put_latest` puts it in the older
one's place in the queue. Past MAX_PENDING commands waiting, only fader updates still get in.
"""

from __future__ import annotations

import queue

from performance.protocol.commands import Command

MAX_PENDING = 256  # commands waiting for the engine; past this only fader updates still get in
CAPACITY = 4096  # everything the frame loop takes in (commands, and room for what it adds)


class Inbox(queue.Queue):
    """The engine's inbox: put from any thread, drained by the frame loop."""

    def __init__(self, maxsize: int = CAPACITY) -> None:
        super().__init__(maxsize=maxsize)

    def drain(self, limit: int = CAPACITY) -> list:
        """Everything waiting now (at most `limit`), oldest first; never blocks."""
        out = []
        for _ in range(limit):
            try:
                out.append(self.get_nowait())
            except queue.Empty:
                break
        return out


def put_latest(q: queue.Queue, cmd: Command, old: Command | None) -> str:
    """Put `cmd` on `q`, replacing `old` (the same fader's previous value) if the engine has not
    taken it yet. Returns "replaced", "queued" or "full"."""
    if old is not None:
        with q.mutex:  # queue.Queue's own lock: get() cannot run while we swap
            items = q.queue
            for i in range(len(items) - 1, -1, -1):
                if items[i] is old:
                    items[i] = cmd
                    return "replaced"
    if old is None and q.qsize() >= MAX_PENDING:
        return "full"
    try:
        q.put_nowait(cmd)
    except queue.Full:
        return "full"
    return "queued"
