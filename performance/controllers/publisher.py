"""The one state publisher: the engine's snapshot, fanned out to every listener.

The frame loop publishes a plain-value snapshot (keys as in ARCHITECTURE.md's /lectern/state/...)
on every change and at least once a second; each listener (the OSC server's subscribers, MIDI
feedback, the browser remote's WebSockets, the operator view) receives the same dict, so a change
from any source shows on all of them. A listener must only hand the snapshot to its own thread
(store it, wake a loop): it runs on the frame loop and must never block it. A listener that
raises is logged once and dropped, the show goes on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

log = logging.getLogger("lectern.publisher")
Listener = Callable[[dict], None]


class StatePublisher:
    """Fans each published snapshot out to the listeners, in the order they subscribed."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()  # subscribe/unsubscribe may come from any thread
        self._latest: dict[str, Any] = {}
        self.published = 0

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; it gets the latest snapshot at once (if any). Returns an unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)
            latest = self._latest
        if latest:
            self._call(listener, latest)
        return lambda: self.unsubscribe(listener)

    def unsubscribe(self, listener: Listener) -> None:
        """Remove a listener (no error when it is not subscribed)."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @property
    def latest(self) -> MappingProxyType:
        """The last snapshot published (read-only view; empty before the first)."""
        return MappingProxyType(self._latest)

    def publish(self, state: dict) -> None:
        """Hand a snapshot to every listener. The dict must not be mutated afterwards (a copy is kept)."""
        snap = dict(state)
        with self._lock:
            self._latest = snap
            listeners = list(self._listeners)
        self.published += 1
        for fn in listeners:
            self._call(fn, snap)

    def _call(self, fn: Listener, snap: dict) -> None:
        try:
            fn(snap)
        except Exception:
            log.exception("state listener %r failed; dropped", fn)
            self.unsubscribe(fn)
