"""OSC without sockets: a datagram's bytes in, Commands on the inbox and encoded replies out.

`OscReceiver.packet(data, addr)` is the whole path a UDP datagram or a TCP frame takes (the guard's
allowlist, rate and passcode; parsing; OSC's own verbs; the one command table's validation; fader
coalescing on the inbox) and `outgoing()` hands back what would be sent, encoded. server.py adds
only the sockets and threads around it, so tests feed this byte literals with no socket at all.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from performance.controllers.inbox import put_latest
from performance.controllers.osc.guard import MAX_SENDERS, Guard, _Limiter, _Sender
from performance.controllers.osc.help import TCP_COMMANDS
from performance.controllers.osc.session import session_verb
from performance.controllers.osc.wire import (
    NTP_EPOCH,
    address_of,
    build_message,
    bundle_elements,
    parse_datagram,
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
QUIET = {"state", "reply", "pong"}  # our own outputs echoed back: ignored silently (no echo loops)
COUNTERS = ("received", "accepted", "replied", "dropped_not_allowed", "dropped_rate", "dropped_full", "malformed",
            "unknown", "invalid", "coalesced", "not_connected", "wrong_passcode", "state_sent", "tcp_frames",
            "passcode_limited", "dropped_amplification", "subscriptions_expired", "bytes_in", "bytes_out",
            "tcp_idle_closed", "tcp_unproven_closed", "tcp_evicted")
Outgoing = tuple["tuple[str, int] | socket.socket", bytes, str]  # (to, datagram, address)


class OscReceiver:
    """The packet path with no socket. inbox: where accepted Commands go (None: an own queue);
    scene_count: how many scenes the setlist has (scene numbers are clamped to it); clock: the
    engine clock a future timetag is turned into (None: timetags apply at once)."""

    def __init__(self, inbox: queue.Queue | None = None, *, allow: list[str] | None = None,
                 passcode: str | None = None, scene_count: Callable[[], int] = lambda: 1, clock=None,
                 rate_limit: float = 200.0, trust_loopback: bool = True, token: str | None = None) -> None:
        self.inbox: queue.Queue = inbox if inbox is not None else queue.Queue(maxsize=4096)
        self.rate_limit = max(1.0, float(rate_limit))
        self.guard = Guard(allow=allow, passcode=passcode, token=token, rate_limit=self.rate_limit,
                           trust_loopback=trust_loopback)
        self.passcode = self.guard.passcode
        self.scene_count = scene_count
        self.clock = clock
        self.own_address: tuple[str, int] | None = None  # the UDP socket's (host, port), once bound
        self.counts = dict.fromkeys(COUNTERS, 0)
        self._slots: dict[tuple[str, str], Command] = {}  # fader (name, ip) -> the last one put on the inbox
        self._out: queue.Queue = queue.Queue(maxsize=4096)
        self._state_dirty = False
        self._sent_state: dict[tuple[str, int], dict] = {}
        self._limiter = _Limiter()
        self._rx_lock = threading.Lock()

    def _warn(self, reason: str, msg: str, *args: Any) -> None:
        ok, held = self._limiter.ok(reason)
        if held:
            log.warning("(%d more OSC '%s' warnings were held back)", held, reason)
        if ok:
            log.warning(msg, *args)

    def packet(self, data: bytes, addr: tuple[str, int], conn: socket.socket | None = None) -> None:
        """One datagram (or TCP frame) from addr; never raises: nothing a packet does stops the show."""
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

    def encode(self, item: tuple) -> Outgoing | None:
        """One queued send as bytes, or None where the sender's amplification credit refuses it."""
        to, address, args, sender = item
        data = build_message(address, args)
        if not self.guard.may_send(sender, len(data), tcp=isinstance(to, socket.socket)):
            self.counts["dropped_amplification"] += 1
            return None
        self.counts["bytes_out"] += len(data)
        if address.endswith("/reply"):
            self.counts["replied"] += 1
        return to, data, address

    def outgoing(self) -> list[Outgoing]:
        """Everything waiting to be sent, encoded (what the send thread does, for a caller with no socket)."""
        out = []
        while True:
            try:
                item = self._out.get_nowait()
            except queue.Empty:
                return out
            if item is not None and (sent := self.encode(item)) is not None:
                out.append(sent)
