"""Writers ask `ok_to_write()`; after a failed write (a full disk, or the disk_full fault) they pause
and retry a while later. The show never stops for a full disk.

Used by the transcript writer and the status writer, each on its own thread with its own guard.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable

from performance import faults

log = logging.getLogger("lectern.disk")
FAULT = "disk_full"


class DiskGuard:
    """Pauses one writer for `retry_s` seconds after each failed write."""

    def __init__(self, retry_s: float = 30.0, *, what: str = "writing",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_s = retry_s
        self.what = what
        self.clock = clock
        self.paused_until = 0.0
        self.errors = 0
        self.paused = False  # a pause began and no write has succeeded since

    def ok_to_write(self) -> bool:
        """May the writer try now? False while paused (or while the disk_full fault is on)."""
        if faults.active(FAULT):
            if self.clock() >= self.paused_until:
                self.note_error(OSError(errno.ENOSPC, "No space left on device (fault injection)"))
            return False
        return self.clock() >= self.paused_until

    def note_error(self, exc: OSError) -> None:
        """A write failed: pause (logged once per pause, not per write)."""
        self.errors += 1
        now = self.clock()
        if now >= self.paused_until:
            log.error("%s paused for %.0f s: %s", self.what, self.retry_s, exc)
        self.paused = True
        self.paused_until = now + self.retry_s

    def note_ok(self) -> None:
        """A write succeeded: say so once if it follows a pause."""
        if self.paused:
            self.paused = False
            log.warning("%s resumed after %d failed attempts", self.what, self.errors)
