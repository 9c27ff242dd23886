"""The frame loop's heartbeat.

`beat()` (every frame) only stores a time. A thread of its own passes it on twice a second: it
touches the file the supervisor watches (LECTERN_HEARTBEAT, set by the supervisor; a number there
is a file descriptor, e.g. a pipe, to write one byte to) and pings systemd's watchdog (WATCHDOG=1
when NOTIFY_SOCKET is set). A hung frame loop stops beating, so the file goes stale and the
watchdog pings stop: the supervisor (or systemd) kills and restarts the engine.

The file is written once and then only touched (utime), which needs no free disk space: a full disk
must not make a healthy engine look hung.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

from performance.install.sdnotify import notify

ENV = "LECTERN_HEARTBEAT"


class Heartbeat:
    """Heartbeat of the frame loop; see the module docstring."""

    def __init__(self, target: str | Path | int | None = None, interval: float = 1.0) -> None:
        """`target`: a path or an open file descriptor; None reads $LECTERN_HEARTBEAT (nothing when unset)."""
        if target is None:
            env = os.environ.get(ENV, "").strip()
            target = int(env) if env.isdigit() else (env or None)
        self.fd: int | None = target if isinstance(target, int) else None
        self.path: Path | None = Path(target) if isinstance(target, (str, Path)) else None
        if self.fd is not None:
            try:
                os.set_blocking(self.fd, False)  # a full pipe must not block the beat thread
            except OSError:
                self.fd = None
        self.interval = interval
        self.beats_sent = 0
        self._last = 0.0
        self._sent = 0.0
        self._ready_wanted = False
        self._ready_sent = False
        self._created = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lectern-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        """Called every frame: stores the time, nothing else."""
        self._last = time.monotonic()

    def ready(self) -> None:
        """The first frame is on screen: READY=1 goes to systemd (also sent after the first beat)."""
        self._ready_wanted = True

    def stop(self, timeout: float = 2.0) -> None:
        """End the thread (the watchers then see silence)."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval / 2):
            last = self._last
            if (self._ready_wanted or last) and not self._ready_sent:
                self._ready_sent = True
                notify("READY=1")
            if last <= self._sent:
                continue  # no frame since the last beat: let the watchers see silence
            self._sent = last
            notify("WATCHDOG=1")
            self._pass_on()
            self.beats_sent += 1

    def _pass_on(self) -> None:
        if self.fd is not None:
            try:
                os.write(self.fd, b".")
            except BlockingIOError:
                pass  # the reader is behind; it has seen enough beats
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.EBADF):
                    self.fd = None  # the supervisor is gone
            return
        if self.path is None:
            return
        try:
            if self._created:
                os.utime(self.path)
                return
        except FileNotFoundError:
            pass  # removed (a new supervisor run): create it again
        except OSError:
            return
        try:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(f"{os.getpid()}\n")
            os.replace(tmp, self.path)
            self._created = True
        except OSError:
            pass
