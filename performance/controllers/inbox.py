"""Putting Commands on the engine's inbox, with fader bursts collapsed to the newest value.

The inbox is a bounded queue.Queue that the frame loop drains once a frame. A fader (MIDI CC, a
remote's slider) can send hundreds of values a second; only the newest one the engine has not
taken yet matters, so it replaces the older one in its place in the queue (as OscServer does).
"""

from __future__ import annotations

import queue

from performance.protocol.commands import Command

MAX_PENDING = 256  # commands waiting for the engine; past this only fader updates still get in


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
