"""The engine's one clock. Monotonic, optionally scaled; a fake clock for tests.

Everything time-based (timeline, ramps, opening hours, audio mix, recording) reads this clock, so
`--time-scale` speeds up all of it together and a FakeClock runs a whole set in milliseconds.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Engine seconds since the session started."""
        ...

    def wall(self) -> datetime:
        """The engine's notion of local wall time (session start wall time + engine seconds)."""
        ...


class MonotonicClock:
    """Real time from time.monotonic(), scaled by time_scale (2.0 = twice as fast)."""

    def __init__(self, time_scale: float = 1.0, start_wall: datetime | None = None) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.time_scale = time_scale
        self._t0 = time.monotonic()
        self._wall0 = start_wall or datetime.now().astimezone()

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.time_scale

    @property
    def start_wall(self) -> datetime:
        """The engine's wall time at engine second 0."""
        return self._wall0

    def real_seconds(self, engine_seconds: float) -> float:
        """How long engine_seconds last on the wall clock."""
        return engine_seconds / self.time_scale

    def wall(self) -> datetime:
        return self._wall0 + timedelta(seconds=self.now())


class FakeClock:
    """A clock tests move by hand. Thread-safe so workers may read it."""

    def __init__(self, start: float = 0.0, start_wall: datetime | None = None) -> None:
        self._t = start
        self._lock = threading.Lock()
        self._wall0 = start_wall or datetime(2026, 1, 5, 12, 0, 0).astimezone()
        self.time_scale = 1.0

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, dt: float) -> float:
        with self._lock:
            self._t += dt
            return self._t

    def set(self, t: float) -> None:
        with self._lock:
            self._t = t

    def wall(self) -> datetime:
        return self._wall0 + timedelta(seconds=self.now())

    @property
    def start_wall(self) -> datetime:
        """The engine's wall time at engine second 0."""
        return self._wall0

    def real_seconds(self, engine_seconds: float) -> float:
        return 0.0
