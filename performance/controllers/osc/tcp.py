"""OSC over TCP with SLIP framing (OSC 1.1), for a show controller that wants GO delivered.

The TCP half of OscServer: a listener on the UDP port's number, one thread per connection, SLIP
frames handed to the same receive path as datagrams. Connections are admitted by guard.py's
TcpAdmission: a stranger has a few seconds to speak OSC (and connect, with a passcode), strangers
never take a proven controller's slot, and the oldest stranger makes room for a newcomer.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from performance.controllers.osc.wire import MAX_DATAGRAM, SLIP_END, slip_decode

log = logging.getLogger("lectern.osc")


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class TcpMixin:
    """TCP listening and connections (mixed into OscServer, which owns the sockets and counters)."""

    def _listen_tcp(self, host: str, port: int) -> socket.socket | None:
        try:
            s = socket.socket(self.family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(4)
            s.settimeout(0.2)
            return s
        except OSError as e:
            log.warning("OSC over TCP unavailable on %s:%d (%s); UDP only", host, port, e.strerror)
            return None

    def _accept(self) -> None:
        assert self.tcp_sock is not None
        while not self._stop.is_set():
            try:
                conn, addr = self.tcp_sock.accept()
            except (TimeoutError, OSError):
                continue
            if not self.guard.allowed(addr[0]):
                self.counts["dropped_not_allowed"] += 1
                conn.close()
                continue
            evicted = self.tcp.admit(conn, addr[0])
            if evicted is not None:  # the oldest stranger makes room: its thread sees it and ends
                self.counts["tcp_evicted"] += 1
                _shut(evicted)
            threading.Thread(target=self._tcp_client, args=(conn, addr), name="lectern-osc-tcp-client",
                             daemon=True).start()

    def _tcp_client(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        conn.settimeout(0.5)
        buf = bytearray()
        heard = time.monotonic()
        try:
            while not self._stop.is_set() and self.tcp.still_held(conn):
                if self.tcp.overdue(conn):  # unproven after its deadline: the slot goes to someone else
                    self.counts["tcp_unproven_closed"] += 1
                    return
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    if time.monotonic() - heard > self.tcp_idle_s:  # a silent client must not hold a slot
                        self.counts["tcp_idle_closed"] += 1
                        return
                    continue
                heard = time.monotonic()
                if not chunk:
                    return
                buf += chunk
                if not self._tcp_frames(conn, addr, buf):
                    return
        except OSError:
            return
        finally:
            self.tcp.leave(conn)
            conn.close()

    def _tcp_frames(self, conn: socket.socket, addr: tuple[str, int], buf: bytearray) -> bool:
        """Handle every whole SLIP frame in `buf` (consumed in place); False to close the connection."""
        while (end := buf.find(bytes([SLIP_END]))) >= 0:
            frame = bytes(buf[:end])
            del buf[:end + 1]
            if not frame:
                continue
            self.counts["tcp_frames"] += 1
            try:
                packet = slip_decode(frame)
            except ValueError as e:
                self.counts["malformed"] += 1
                self._warn("malformed", "bad SLIP frame from %s: %s", addr[0], e)
                continue
            self.packet(packet, addr, conn)
            sender = self.guard.senders.get(addr[0])
            if sender is not None and not self.guard.needs_connect(sender) and not self.tcp.prove(conn):
                self.counts["dropped_full"] += 1  # every slot is held by a proven controller
                return False
        if len(buf) > MAX_DATAGRAM:  # a frame that never ends: not a controller we can serve
            self._warn("malformed", "OSC TCP stream from %s without frame ends; closing", addr[0])
            return False
        return True
