"""The one place state goes out: the Snapshot is built here and fanned out to every listener.

`compose` is the only function that builds a `Snapshot` (from the engine's report and the
runtime's own health). `StatePublisher` hands each snapshot to its listeners in the order they
subscribed: the controllers (OSC, MIDI, the remote, the keyboard, the console), the operator view,
the monitor and status.json. `Cadence` says when: on change, at most once a frame, and at least
once a second. A listener must only hand the snapshot to its own thread (store it, wake a loop):
it runs on the frame loop and must never block it. One that raises is logged once and dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from performance.protocol.snapshot import Snapshot

log = logging.getLogger("lectern.publisher")
Listener = Callable[[Snapshot], None]
_FIELDS = frozenset(Snapshot.keys())
MAX_QUIET_S = 1.0  # state goes out at least this often, changed or not


def compose(report: dict[str, Any], **runtime: Any) -> Snapshot:
    """The Snapshot from the engine's report (Engine.snapshot) and the runtime's fields
    (health, tokens, next_at, warnings, open, next_change, setlist, controllers)."""
    values = {k: v for k, v in report.items() if k in _FIELDS}
    values.update(runtime)
    return Snapshot(**values)


class StatePublisher:
    """Fans each published snapshot out to the listeners, in the order they subscribed."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()  # subscribe/unsubscribe may come from any thread
        self._latest: Snapshot | None = None
        self.published = 0

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; it gets the latest snapshot at once (if any). Returns an unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)
            latest = self._latest
        if latest is not None:
            self._call(listener, latest)
        return lambda: self.unsubscribe(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Remove a listener (no error when it is not subscribed)."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @property
    def latest(self) -> Snapshot | None:
        """The last snapshot published (None before the first)."""
        return self._latest

    def publish(self, snap: Snapshot) -> None:
        """Hand a snapshot to every listener (it is immutable: they all share it)."""
        with self._lock:
            self._latest = snap
            listeners = list(self._listeners)
        self.published += 1
        for fn in listeners:
            self._call(fn, snap)

    def _call(self, fn: Listener, snap: Snapshot) -> None:
        try:
            fn(snap)
        except Exception:
            log.exception("state listener %r failed; dropped", fn)
            self.unsubscribe(fn)


class Cadence:
    """When to publish: something changed since the last frame, or a second has passed."""

    def __init__(self) -> None:
        self.dirty = True
        self.last = -1e9

    def changed(self) -> None:
        """An event that listeners must see (a scene, a poem, a command, an error)."""
        self.dirty = True

    def due(self, t: float) -> bool:
        """Publish now (at most once a frame: the loop asks once per frame)?"""
        if self.dirty or t - self.last >= MAX_QUIET_S:
            self.dirty, self.last = False, t
            return True
        return False
