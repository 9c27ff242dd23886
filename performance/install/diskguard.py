"""Writers ask `ok_to_write()`; after a full disk (or the disk_full fault) they pause and retry a
little later. The show never stops for a full disk."""

from __future__ import annotations

import errno
import logging
import time

from performance import faults

log = logging.getLogger("lectern.disk")


class DiskGuard:
    def __init__(self, retry_s: float = 30.0) -> None:
        self.retry_s = retry_s
        self.paused_until = 0.0
        self.errors = 0

    def ok_to_write(self) -> bool:
        if faults.active("disk_full"):
            self.note_error(OSError(errno.ENOSPC, "No space left on device (fault injection)"))
            return False
        return time.monotonic() >= self.paused_until

    def note_error(self, exc: OSError) -> None:
        self.errors += 1
        if time.monotonic() >= self.paused_until:
            log.error("writing paused for %.0f s: %s", self.retry_s, exc)
        self.paused_until = time.monotonic() + self.retry_s
