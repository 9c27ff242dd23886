"""systemd's sd_notify without a dependency: one datagram to $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket

ENV = "NOTIFY_SOCKET"


def notify(message: str) -> bool:
    """Send e.g. "READY=1" or "WATCHDOG=1" to systemd; False when not run by systemd (or it failed).

    Never raises: a missing or full socket must not stop the show."""
    path = os.environ.get(ENV)
    if not path:
        return False
    if path.startswith("@"):  # abstract namespace socket
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            s.sendto(message.encode(), path)
        return True
    except OSError:
        return False
