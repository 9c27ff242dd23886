"""The OSC server: sockets and threads only (UDP, and TCP with SLIP framing for GO and panic).

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
from typing import Any

from performance.controllers.inbox import put_latest
from performance.controllers.osc.feedback import state_messages
from performance.controllers.osc.guard import MAX_SENDERS, Guard, TcpAdmission, _Limiter, _Sender
from performance.controllers.osc.help import TCP_COMMANDS
from performance.controllers.osc.session import SUBSCRIPTION_TTL_S, session_verb
from performance.controllers.osc.tcp import TcpMixin
from performance.controllers.osc.wire import (
    _QUIET,
    NTP_EPOCH,
    address_of,
    build_message,
    bundle_elements,
    parse_datagram,
    slip_encode,
)
from performance.protocol.commands import (
    PREFIX,
    SESSION_TABLE,
    TABLE,
    Command,
    CommandError,
    UnknownCommand,
    interpret,
)

log = logging.getLogger("lectern.osc")
MAX_BUNDLE_ELEMENTS = 256  # messages in one bundle (a cue list, not a flood); whatever --osc-rate says
MAX_DELAY_S = 3600.0  # a bundle timetag further ahead than this is refused (nobody cues a show a day ahead)
TCP_IDLE_S = 60.0  # a TCP connection silent this long is closed
QUIET = {"state", "reply", "pong"}  # our own outputs echoed back: ignored silently (no echo loops)


class OscServer(TcpMixin):
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
        self.inbox: queue.Queue = inbox if inbox is not None else queue.Queue(maxsize=4096)
        self.host = host
        self.guard = Guard(allow=allow, passcode=passcode, token=token, rate_limit=max(1.0, float(rate_limit)),
                           trust_loopback=trust_loopback)
        self.passcode = self.guard.passcode
        self.scene_count = scene_count
        self.clock = clock
        self.rate_limit = max(1.0, float(rate_limit))
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
        self.sock.settimeout(0.2)
        self.tcp_sock: socket.socket | None = None
        if tcp:
            self.tcp_sock = self._listen_tcp(host, self.port)
        self._slots: dict[tuple[str, str], Command] = {}  # fader (name, ip) -> the last one put on the inbox
        self._out: queue.Queue = queue.Queue(maxsize=4096)
        self._state: dict = {}
        self._state_dirty = False
        self._sent_state: dict[tuple[str, int], dict] = {}
        self._last_full = 0.0
        self._stop = threading.Event()
        self._limiter = _Limiter()
        self.tcp = TcpAdmission()
        self._rx_lock = threading.Lock()
        self.counts = {"received": 0, "accepted": 0, "replied": 0, "dropped_not_allowed": 0, "dropped_rate": 0,
                       "dropped_full": 0, "malformed": 0, "unknown": 0, "invalid": 0, "coalesced": 0,
                       "not_connected": 0, "wrong_passcode": 0, "state_sent": 0, "tcp_frames": 0,
                       "passcode_limited": 0, "dropped_amplification": 0, "subscriptions_expired": 0,
                       "bytes_in": 0, "bytes_out": 0, "tcp_idle_closed": 0,
                       "tcp_unproven_closed": 0, "tcp_evicted": 0}
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

    def _warn(self, reason: str, msg: str, *args: Any) -> None:
        ok, held = self._limiter.ok(reason)
        if held:
            log.warning("(%d more OSC '%s' warnings were held back)", held, reason)
        if ok:
            log.warning(msg, *args)

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
            self._packet(data, addr, None)

    def _packet(self, data: bytes, addr: tuple[str, int], conn: socket.socket | None) -> None:
        try:
            with self._rx_lock:  # UDP and TCP clients share the senders, slots and counters: one at a time
                self._datagram(data, addr, conn)
        except Exception as e:  # nothing a packet does may stop the server
            self.counts["malformed"] += 1
            self._warn("internal", "OSC packet from %s dropped: %s", addr[0], e)

    def _datagram(self, data: bytes, addr: tuple[str, int], conn: socket.socket | None = None) -> None:
        self.counts["received"] += 1
        self.counts["bytes_in"] += len(data)
        ip = addr[0]
        if not self.guard.allowed(ip):
            self.counts["dropped_not_allowed"] += 1
            self._warn("allow", "OSC from %s ignored (not in --osc-allow)", ip)
            return
        sender = self.guard.sender(ip)
        if not self.guard.take_token(sender, len(data), tcp=conn is not None):
            self.counts["dropped_rate"] += 1
            self._warn("rate", "OSC from %s over the rate limit (%g/s); dropping", ip, self.rate_limit)
            return
        elements = bundle_elements(data)  # counted before parsing: a huge bundle costs no parsing when refused
        if elements > MAX_BUNDLE_ELEMENTS:
            self.counts["malformed"] += 1
            self._warn("malformed", "OSC bundle of %d messages from %s refused (at most %d)", elements, ip,
                       MAX_BUNDLE_ELEMENTS)
            return
        if elements - 1 > sender.tokens:
            self.counts["dropped_rate"] += 1
            self._warn("rate", "OSC bundle of %d messages from %s over the rate limit (%g/s); dropping",
                       elements, ip, self.rate_limit)
            return
        try:
            messages = parse_datagram(data)
        except Exception as e:
            self.counts["malformed"] += 1
            self._warn("malformed", "malformed OSC packet from %s (%d bytes): %s", ip, len(data), e)
            address = address_of(data)
            if address and address.startswith(PREFIX + "/") and address[len(PREFIX) + 1:] in TABLE:
                self._replier(addr, sender, address, conn)(False, f"malformed, nothing changed: {e}")
            return
        extra = len(messages) - 1  # every message costs a token: a 2,000-message bundle is 2,000 messages
        if extra > 0:
            if sender.tokens < extra:
                self.counts["dropped_rate"] += 1
                self._warn("rate", "OSC bundle of %d messages from %s over the rate limit (%g/s); dropping",
                           len(messages), ip, self.rate_limit)
                return
            sender.tokens -= extra
        for tag, msg in messages:
            try:
                address, params = msg.address, tuple(msg.params)
            except Exception as e:
                self.counts["malformed"] += 1
                self._warn("malformed", "malformed OSC message from %s: %s", ip, e)
                continue
            self._message(address, params, addr, sender, tag, conn)

    def _message(self, address: str, params: tuple, addr: tuple[str, int], sender: _Sender, tag: float | None,
                 conn: socket.socket | None = None) -> None:
        name = address[len(PREFIX) + 1:] if address.startswith(PREFIX + "/") else ""
        if name.split("/")[0] in QUIET:
            return
        reply = self._replier(addr, sender, address, conn)
        if conn is not None and name not in TCP_COMMANDS:
            self.counts["invalid"] += 1
            reply(False, f"over TCP only {', '.join(sorted(TCP_COMMANDS))}; send {address} over UDP")
            return
        if name in SESSION_TABLE:  # the transport's own verbs: they never reach the show
            session_verb(self, name, params, addr, sender, reply, conn)
            return
        if self.guard.needs_connect(sender):
            self.counts["not_connected"] += 1
            reply(False, "send /lectern/connect <passcode> first")
            return
        self._command(address, params, addr, sender, tag, reply)

    def _command(self, address: str, params: tuple, addr: tuple[str, int], sender: _Sender, tag: float | None,
                 reply: Callable[[bool, str], None]) -> None:
        try:
            name, args = interpret(address, params, self.scene_count())
            due = self._due(tag)
        except CommandError as e:
            self.counts["unknown" if isinstance(e, UnknownCommand) else "invalid"] += 1
            self._warn("invalid", "OSC %s from %s refused: %s", address, addr[0], e)
            reply(False, str(e))
            return
        cmd = Command(f"{PREFIX}/{name}", args, source="osc", sender=addr, due=due, reply=reply,
                      received=time.monotonic())
        if self._enqueue(cmd, (name, addr[0]) if TABLE[name].fader and cmd.due is None else None):
            self.counts["accepted"] += 1
        else:
            self.counts["dropped_full"] += 1
            reply(False, "busy: too many commands waiting")

    def _due(self, tag: float | None) -> float | None:
        """A future timetag as engine time; past or immediate ones apply at once."""
        if tag is None or self.clock is None:
            return None
        delay = (tag - NTP_EPOCH) - time.time()
        if delay <= 0:
            return None
        if delay > MAX_DELAY_S:
            raise CommandError(f"bundle timetag {delay:.0f} s ahead; at most {MAX_DELAY_S:.0f} s allowed")
        return self.clock.now() + delay * getattr(self.clock, "time_scale", 1.0)

    def _enqueue(self, cmd: Command, key: tuple[str, str] | None) -> bool:
        """Put a command on the inbox. A fader value (key = (name, ip)) replaces, in its place in
        the queue, the same sender's earlier value that the engine has not taken yet."""
        old = self._slots.get(key) if key is not None else None
        got = put_latest(self.inbox, cmd, old)
        if got == "full":
            return False
        if got == "replaced":
            self.counts["coalesced"] += 1
            if old.reply:
                old.reply(True, "superseded by a newer value")
        if key is not None:
            if len(self._slots) > 4 * MAX_SENDERS:  # stale entries only cost a missed coalescing
                self._slots.clear()
            self._slots[key] = cmd
        return True





    def _replier(self, addr: tuple[str, int], sender: _Sender, address: str,
                 conn: socket.socket | None) -> Callable[[bool, str], None]:
        def reply(ok: bool, detail: str) -> None:
            """Answer this command: to the sender's source port (or its TCP connection) and to its
            subscribed port. Safe from any thread; never blocks."""
            args = [address, "ok" if ok else "error", str(detail)]
            self._send(conn or addr, f"{PREFIX}/reply", args, sender)
            if sender.subscribed and (conn is not None or sender.subscribed != addr[1]):
                self._send((addr[0], sender.subscribed), f"{PREFIX}/reply", args, sender)

        return reply

    def _send(self, to: tuple[str, int] | socket.socket, address: str, args: list,
              sender: _Sender | None = None) -> None:
        try:
            self._out.put_nowait((to, address, args, sender))
        except queue.Full:
            pass

    def _wake(self) -> None:
        """Have the send thread look at the state now (not at its next poll)."""
        self._state_dirty = True
        try:
            self._out.put_nowait(None)
        except queue.Full:
            pass

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._out.get(timeout=0.05)
                if item is not None:
                    to, address, args, sender = item
                    data = build_message(address, args)
                    if not self.guard.may_send(sender, len(data), tcp=isinstance(to, socket.socket)):
                        self.counts["dropped_amplification"] += 1
                        continue
                    self.counts["bytes_out"] += len(data)
                    if isinstance(to, socket.socket):
                        to.sendall(slip_encode(data))
                    else:
                        self.sock.sendto(data, to)
                    if address.endswith("/reply"):
                        self.counts["replied"] += 1
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
