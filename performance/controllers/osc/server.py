"""The OSC server: sockets and threads only (UDP, and TCP with SLIP framing for GO and panic),
around receiver.py's socket-free packet path.

Bytes are parsed and built in wire.py, who may talk is guard.py's, OSC's own verbs (ping, connect,
subscribe) are session.py's, and the state's shapes are feedback.py's; what a command means is the
one table's (performance.protocol.commands). Accepted Commands go on the engine's inbox; the engine
applies them on its own thread and answers through each Command's `reply`, sent from here.
A bundle stamped in the future stalls nothing: its commands carry a `due` time on the engine clock
and the engine applies them then (python-osc's dispatcher would sleep until the timetag).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable

from performance.controllers.osc.feedback import state_messages
from performance.controllers.osc.guard import TcpAdmission
from performance.controllers.osc.receiver import OscReceiver
from performance.controllers.osc.session import SUBSCRIPTION_TTL_S
from performance.controllers.osc.tcp import TcpMixin
from performance.controllers.osc.wire import (
    _QUIET,
    build_message,
    slip_encode,
)
from performance.protocol.commands import (
    PREFIX,
    Command,
)

log = logging.getLogger("lectern.osc")
TCP_IDLE_S = 60.0  # a TCP connection silent this long is closed


class OscServer(TcpMixin, OscReceiver):
    """A receive thread and a send thread around one UDP socket (plus an optional TCP listener).

    inbox: where accepted Commands go (the engine's bounded queue); None = an own queue, read with
    `drain()`. scene_count: how many scenes the setlist has (scene numbers are clamped to it).
    clock: the engine clock (now(), time_scale) that bundle timetags are converted to; None =
    timetags ignored, commands apply at once. rate_limit: datagrams per second per sender IP
    (also the burst size). tcp: also listen for SLIP-framed GO/PANIC on TCP at the same port.
    token: the session token, accepted by /lectern/connect outside the guess budget.
    """

    def __init__(self, inbox: queue.Queue | None = None, *, host: str = "127.0.0.1", port: int = 9000,
                 allow: list[str] | None = None, passcode: str | None = None,
                 scene_count: Callable[[], int] = lambda: 1, clock=None, rate_limit: float = 200.0,
                 tcp: bool = True, trust_loopback: bool | None = None, token: str | None = None) -> None:
        # a loopback source cannot be forged from the network (the kernel drops such packets arriving
        # from outside), so loopback senders count as verified; the bench turns this off (argument, or
        # LECTERN_OSC_TRUST_LOOPBACK=0) to measure what a remote, spoofable sender gets
        if trust_loopback is None:
            trust_loopback = os.environ.get("LECTERN_OSC_TRUST_LOOPBACK", "1") != "0"
        self.trust_loopback = trust_loopback
        super().__init__(inbox, allow=allow, passcode=passcode, scene_count=scene_count, clock=clock,
                         rate_limit=rate_limit, trust_loopback=trust_loopback, token=token)
        self.host = host
        self.tcp_idle_s = TCP_IDLE_S
        if _QUIET not in logging.getLogger().filters:
            logging.getLogger().addFilter(_QUIET)
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # no SO_REUSEADDR: for UDP it would let a second show bind the same port and steal its packets;
        # a port in use must fail here, so the caller can say so
        self.sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:  # a burst from a controller should wait in the kernel, not be lost
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError:
            pass
        self.sock.bind((host, port))
        self.own_address = self.sock.getsockname()[:2]
        self.sock.settimeout(0.2)
        self.tcp_sock: socket.socket | None = None
        if tcp:
            self.tcp_sock = self._listen_tcp(host, self.port)
        self._state: dict = {}
        self._last_full = 0.0
        self._stop = threading.Event()
        self.tcp = TcpAdmission()
        self._threads = [threading.Thread(target=self._receive, name="lectern-osc-rx", daemon=True),
                         threading.Thread(target=self._send_loop, name="lectern-osc-tx", daemon=True)]
        if self.tcp_sock is not None:
            self._threads.append(threading.Thread(target=self._accept, name="lectern-osc-tcp", daemon=True))

    @property
    def port(self) -> int:
        """The UDP port actually bound (port 0 asks the system for a free one)."""
        return self.sock.getsockname()[1]

    @property
    def tcp_port(self) -> int | None:
        """The TCP (SLIP) port, or None when it could not be opened."""
        return self.tcp_sock.getsockname()[1] if self.tcp_sock is not None else None

    def start(self) -> None:
        """Start the threads; returns at once."""
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Stop the threads and close the sockets (within about a second)."""
        self._stop.set()
        for t in self._threads:
            if t.ident is not None:  # stop() before start() just closes the sockets
                t.join(1.0)
        self.sock.close()
        if self.tcp_sock is not None:
            self.tcp_sock.close()

    def stats(self) -> dict:
        """Counters: received, accepted, replied, dropped_not_allowed, dropped_rate, dropped_full,
        malformed, unknown (address), invalid (arguments), coalesced, not_connected, wrong_passcode,
        state_sent, tcp_frames; plus subscribers and pending (commands waiting for the engine)."""
        out = dict(self.counts)
        out["subscribers"] = self.guard.subscriber_count()
        out["locked_out"] = sum(1 for t in list(self.guard.lockouts.values()) if t > time.monotonic())
        out["pending"] = self.inbox.qsize()
        return out

    def drain(self) -> list[Command]:
        """Commands waiting on the inbox, oldest first, fader bursts already collapsed (for a
        caller that did not hand in its own inbox; with a shared inbox this takes from it too)."""
        out = []
        while True:
            try:
                out.append(self.inbox.get_nowait())
            except queue.Empty:
                return out

    def publish_state(self, state: dict) -> None:
        """The engine's latest snapshot (plain values: protocol/snapshot.py Snapshot.to_dict). O(1): the send
        thread pushes what changed to every subscriber, and everything at least once a second."""
        self._state = state
        if not self._state_dirty:  # wake the send thread once, however often this is called
            self._wake()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            self.packet(data, addr, None)

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._out.get(timeout=0.05)
                sent = self.encode(item) if item is not None else None
                if sent is not None:
                    to, data, _ = sent
                    if isinstance(to, socket.socket):
                        to.sendall(slip_encode(data))
                    else:
                        self.sock.sendto(data, to)
            except queue.Empty:
                pass
            except Exception as e:  # an unsendable reply (odd text, a closed connection) must not stop feedback
                self._warn("send", "OSC send failed: %s", e)
            try:
                self._push_state()
            except Exception as e:
                self._warn("send", "OSC state push failed: %s", e)

    def _push_state(self) -> None:
        now = time.monotonic()
        full = now - self._last_full >= 1.0
        if not (self._state_dirty or full):
            return
        self._state_dirty = False
        for s in list(self.guard.senders.values()):
            if s.subscribed and now - s.heard > SUBSCRIPTION_TTL_S:  # a lease not renewed: forget it
                s.subscribed = None
                self.counts["subscriptions_expired"] += 1
        subs = [(ip, s.subscribed) for ip, s in list(self.guard.senders.items()) if s.subscribed]
        if full:
            self._last_full = now
            self._sent_state = {k: v for k, v in self._sent_state.items() if k in subs}
        if not subs:
            return
        msgs = state_messages(self._state, lambda k, v: self._warn("state", "OSC state %s not sendable: %r", k, v))
        for to in subs:
            sent = self._sent_state.setdefault(to, {})
            for name, args in msgs.items():
                if full or sent.get(name) != args:
                    sent[name] = args
                    try:
                        data = build_message(f"{PREFIX}/{name}", args)
                        self.sock.sendto(data, to)
                        self.counts["state_sent"] += 1
                        self.counts["bytes_out"] += len(data)
                    except OSError as e:
                        self._warn("send", "OSC state send failed: %s", e)
