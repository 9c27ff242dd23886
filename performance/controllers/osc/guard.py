"""Who may talk to the OSC server and how much: the allowlist, a token bucket per sender, the
passcode (through the process-wide guess budget of auth.py, with the session token always
accepted), anti-amplification credit for spoofable senders, and admission of TCP connections.

No sockets here (the server owns them): tests drive a Guard with addresses and sizes.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time

from performance.controllers import auth

log = logging.getLogger("lectern.osc")
MAX_SENDERS = 1024
PASSCODE_TRIES = 5  # wrong passcodes before a sender is locked out ...
LOCKOUT_S = 30.0  # ... for this long
PASSCODE_PER_MINUTE = auth.GUESSES_PER_MINUTE  # wrong passcodes from every sender and interface together
MAX_LOCKOUTS = 4096  # lockouts live apart from the sender table: pruning senders never lifts one
MAX_CREDIT = 65536  # bytes an unverified remote sender may have answered, at most what it sent us
MAX_TCP_CLIENTS = 8  # TCP connections that have shown they speak OSC (and, with a passcode, connected)
MAX_TCP_PENDING = 8  # connections not yet proven, all addresses together ...
MAX_TCP_PENDING_PER_IP = 2  # ... and from one address
TCP_PROVE_S = 3.0  # a new TCP connection must send a valid frame (and connect, with a passcode) this soon


def parse_allow(entries: list[str] | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    """--osc-allow entries as networks (an address is a /32). A host name is resolved once; an
    entry that is neither is logged in one line and left out (fewer senders allowed, never more)."""
    if entries is None:
        return None
    nets = []
    for e in (x.strip() for x in entries):
        if not e:
            continue
        try:
            nets.append(ipaddress.ip_network(e, strict=False))
            continue
        except ValueError:
            pass
        try:
            nets.append(ipaddress.ip_network(socket.gethostbyname(e)))
        except OSError:
            log.error("--osc-allow: %r is not an IP address, network (192.168.1.0/24) or known host name; "
                      "left out", e)
    return nets


class _Sender:
    """What the server knows about one sender IP (owned by the receive thread)."""

    __slots__ = ("tokens", "last", "authorised", "subscribed", "wrong", "verified", "credit", "heard",
                 "pending_port", "token", "told")

    def __init__(self, burst: float, verified: bool) -> None:
        self.tokens = burst
        self.last = self.heard = time.monotonic()
        self.authorised = False
        self.subscribed: int | None = None
        self.wrong = 0
        self.verified = verified  # may be answered beyond the bytes it sent (its address is not spoofed)
        self.credit = 0  # bytes that may still be sent to an unverified sender (1x what it sent)
        self.pending_port: int | None = None  # a subscription waiting for its token to come back
        self.token = 0
        self.told = -1e9  # when it was last told that passcode attempts are limited


class _Limiter:
    """At most `n` log lines per reason per `period` seconds; says how many it held back."""

    def __init__(self, n: int = 3, period: float = 10.0) -> None:
        self.n, self.period = n, period
        self.seen: dict[str, list] = {}

    def ok(self, reason: str) -> tuple[bool, int]:
        """(may log now, how many were suppressed in the previous window)."""
        now = time.monotonic()
        w = self.seen.setdefault(reason, [now, 0])
        held = 0
        if now - w[0] > self.period:
            held = max(0, w[1] - self.n)
            w[0], w[1] = now, 0
        w[1] += 1
        return w[1] <= self.n, held


class Guard:
    """The OSC server's gatekeeping state (owned by its receive path, under its lock)."""

    def __init__(self, *, allow: list[str] | None, passcode: str | None, token: str | None, rate_limit: float,
                 trust_loopback: bool) -> None:
        self.allow = parse_allow(allow)
        self.passcode = passcode or None
        self.gate = auth.Gate(passcode=self.passcode, token=token, channel="osc")
        self.rate_limit = rate_limit
        self.trust_loopback = trust_loopback
        self.senders: dict[str, _Sender] = {}
        self.lockouts: dict[str, float] = {}  # ip -> locked until (monotonic)

    def allowed(self, ip: str) -> bool:
        if self.allow is None:
            return True
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(a in net for net in self.allow)

    def sender(self, ip: str) -> _Sender:
        s = self.senders.get(ip)
        if s is None:
            if len(self.senders) >= MAX_SENDERS:  # forget strangers rather than grow forever (lockouts stay)
                self.senders = {k: v for k, v in self.senders.items() if v.authorised or v.subscribed}
            s = self.senders[ip] = _Sender(self.rate_limit, self._trusted(ip))
        return s

    def _trusted(self, ip: str) -> bool:
        """A loopback source cannot be forged from the network (the kernel drops such packets)."""
        if not self.trust_loopback:
            return False
        try:
            return ipaddress.ip_address(ip).is_loopback
        except ValueError:
            return False

    def take_token(self, s: _Sender, size: int, tcp: bool) -> bool:
        """Count one datagram against its sender's bucket (and credit); False when over the rate."""
        now = time.monotonic()
        s.heard = now  # any message renews its subscription's lease
        if tcp:
            s.verified = True  # a TCP peer completed a handshake: its address is real
        elif not s.verified:
            s.credit = min(MAX_CREDIT, s.credit + size)
        s.tokens = min(self.rate_limit, s.tokens + (now - s.last) * self.rate_limit)
        s.last = now
        if s.tokens < 1:
            return False
        s.tokens -= 1
        return True

    def may_send(self, s: _Sender | None, size: int, tcp: bool) -> bool:
        """Never more bytes to a spoofable address than it sent us (no amplification)."""
        if s is None or s.verified or tcp:
            return True
        if size > s.credit:
            return False
        s.credit -= size
        return True

    def connect(self, given: object, s: _Sender, ip: str) -> tuple[bool | None, str]:
        """/lectern/connect: (True, detail) in, (False, detail) refused, (None, detail) refused and
        answered at most once a second (a flood costs no replies)."""
        if self.passcode is None and self.gate.token is None:
            s.authorised = True
            return True, "connected (no passcode needed)"
        if self.gate.check_token(given):  # the session token: always checked, never budgeted
            s.authorised = s.verified = True
            return True, "connected"
        if self.passcode is None:
            return False, "wrong passcode"
        now = time.monotonic()
        until = self.lockouts.get(ip, 0.0)
        if now < until:
            return False, f"too many wrong passcodes; try again in {until - now:.0f} s"
        verdict = self.gate.check_passcode(given if isinstance(given, str) else "", ip)
        if verdict is auth.Verdict.BUSY:
            if now - s.told < 1.0:
                return None, ""
            s.told = now
            return False, (f"too many passcode attempts (at most {PASSCODE_PER_MINUTE} wrong a minute); try again "
                           "shortly, or connect with the session token")
        if verdict is auth.Verdict.OK:
            s.authorised, s.wrong = True, 0
            s.verified = True  # it knows the passcode: answer it in full
            return True, "connected"
        s.wrong += 1
        if s.wrong >= PASSCODE_TRIES:
            s.wrong = 0
            if len(self.lockouts) >= MAX_LOCKOUTS:
                self.lockouts = {k: v for k, v in self.lockouts.items() if v > now}
            if len(self.lockouts) < MAX_LOCKOUTS:
                self.lockouts[ip] = now + LOCKOUT_S
        return False, "wrong passcode"

    def needs_connect(self, s: _Sender) -> bool:
        return self.passcode is not None and not s.authorised

    def subscriber_count(self) -> int:
        return sum(1 for s in list(self.senders.values()) if s.subscribed)


class TcpAdmission:
    """TCP connections: the proven ones keep their slots; unproven ones have a deadline and a cap per
    address, and the oldest stranger makes room for a newcomer (idle sockets never lock out a GO)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.proven: set[socket.socket] = set()
        self.pending: dict[socket.socket, tuple[str, float]] = {}  # conn -> (ip, opened)

    def admit(self, conn: socket.socket, ip: str) -> socket.socket | None:
        """Take a new connection; returns one to close to make room for it (or None)."""
        with self._lock:
            mine = [c for c, (i, _) in self.pending.items() if i == ip]
            evict = None
            if len(mine) >= MAX_TCP_PENDING_PER_IP:
                evict = min(mine, key=lambda c: self.pending[c][1])
            elif len(self.pending) >= MAX_TCP_PENDING:
                evict = min(self.pending, key=lambda c: self.pending[c][1])
            if evict is not None:
                self.pending.pop(evict, None)
            self.pending[conn] = (ip, time.monotonic())
            return evict

    def prove(self, conn: socket.socket) -> bool:
        """It spoke OSC (and connected, with a passcode): a slot of its own, if one is free."""
        with self._lock:
            if conn in self.proven:
                return True
            if len(self.proven) >= MAX_TCP_CLIENTS:
                return False
            self.pending.pop(conn, None)
            self.proven.add(conn)
            return True

    def is_proven(self, conn: socket.socket) -> bool:
        return conn in self.proven

    def overdue(self, conn: socket.socket) -> bool:
        with self._lock:
            entry = self.pending.get(conn)
        return entry is not None and time.monotonic() - entry[1] > TCP_PROVE_S

    def still_held(self, conn: socket.socket) -> bool:
        """False once the connection was evicted to make room."""
        with self._lock:
            return conn in self.pending or conn in self.proven

    def leave(self, conn: socket.socket) -> None:
        with self._lock:
            self.pending.pop(conn, None)
            self.proven.discard(conn)

    def count(self) -> int:
        with self._lock:
            return len(self.proven) + len(self.pending)
