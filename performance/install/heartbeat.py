"""The frame loop's heartbeat: `beat()` stores a time; a thread of its own writes it to the file
the supervisor watches (LECTERN_HEARTBEAT) and pings systemd's watchdog. A hung frame loop stops
beating, and the supervisor (or systemd) kills and restarts the engine."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from performance.install.sdnotify import notify

ENV = "LECTERN_HEARTBEAT"


class Heartbeat:
    def __init__(self, path: str | Path | None = None, interval: float = 1.0) -> None:
        p = path or os.environ.get(ENV)
        self.path = Path(p) if p else None
        self.interval = interval
        self._last = 0.0
        self._sent = 0.0
        self._ready = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lectern-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        self._last = time.monotonic()

    def ready(self) -> None:
        if not self._ready:
            self._ready = True
            notify("READY=1")

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval / 2):
            last = self._last
            if last <= self._sent:
                continue  # no frame since the last write: let the watchers see silence
            self._sent = last
            if not self._ready:
                self.ready()
            notify("WATCHDOG=1")
            if self.path is not None:
                try:
                    tmp = self.path.with_suffix(".tmp")
                    tmp.write_text(f"{time.time():.3f}\n")
                    os.replace(tmp, self.path)
                except OSError:
                    pass
