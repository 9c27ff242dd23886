"""The OSC server: UDP bytes in, validated Commands out, replies and state back.

As in python-osc, what an address means (validation, clamping: `interpret`) never touches a socket,
and the server threads only move bytes. Handlers never apply anything: accepted Commands go on the
engine's inbox (a bounded queue.Queue), the engine applies them on its own thread and answers
through each Command's `reply`.

Safety: loopback unless a host is named; an allowlist of addresses or networks (others dropped and
counted, never answered); an optional passcode (compared in constant time, a sender that keeps
guessing is locked out for a while); a per-sender token bucket; a bounded inbox where a burst of
fader messages (temperature, volume, speed) collapses to the newest value the engine has not yet
taken. Malformed datagrams are counted and logged at most a few times per interval, never raised.
A bundle stamped in the future stalls nothing: its commands carry a `due` time on the engine
clock and the engine applies them then (python-osc's dispatcher would sleep until the timetag).

GO and PANIC may also arrive over TCP with SLIP framing (OSC 1.1) on the same port number, for a
show controller that wants delivery guaranteed; replies come back on the same connection.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import queue
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from performance.control.command import PREFIX, Command
from performance.control.inbox import put_latest
from performance.control.osc_table import COMMANDS, TCP_COMMANDS

log = logging.getLogger("lectern.osc")
MAX_DATAGRAM = 65507  # the largest UDP payload; anything bigger is not a packet we could have sent
MAX_BUNDLE_DEPTH = 8
MAX_BUNDLE_ELEMENTS = 256  # messages in one bundle (a cue list, not a flood); whatever --osc-rate says
MAX_SENDERS = 1024
MAX_TCP_CLIENTS = 8
MAX_DELAY_S = 3600.0  # a bundle timetag further ahead than this is refused (nobody cues a show a day ahead)
PASSCODE_TRIES = 5  # wrong passcodes before a sender is locked out ...
LOCKOUT_S = 30.0  # ... for this long
PASSCODE_PER_MINUTE = 10  # passcode attempts from all senders together (rotating addresses gains nothing)
MAX_LOCKOUTS = 4096  # lockouts live apart from the sender table: pruning senders never lifts one
SUBSCRIPTION_TTL_S = 600.0  # a subscription lapses unless its sender sends anything within this long
MAX_SUBSCRIBERS = 32
MAX_CREDIT = 65536  # bytes an unverified remote sender may have answered, at most what it sent us
TCP_IDLE_S = 60.0  # a TCP connection silent this long is closed (MAX_TCP_CLIENTS are shared by all)
NTP_EPOCH = 2208988800
TABLE = {a.name: a for a in COMMANDS}
QUIET = {"state", "reply", "pong"}  # our own outputs echoed back: ignored silently (no echo loops)
SLIP_END, SLIP_ESC, SLIP_ESC_END, SLIP_ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD


class _QuietPythonOsc(logging.Filter):
    """python-osc logs every unknown type tag on the root logger: one line per bad packet would
    flood an installation's log. Our own receive path counts and logs them, rate-limited."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pythonosc" not in record.pathname


_QUIET = _QuietPythonOsc()


class OscError(ValueError):
    """A message that cannot be accepted; the text is the reply's detail."""


class UnknownAddress(OscError):
    """An address that is not in the table."""


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise OscError(f"{what} must be a number, got {type(v).__name__}")
    try:
        x = float(v)
    except OverflowError:  # an int beyond float range (a 400-digit number)
        raise OscError(f"{what}: a number beyond ±1.8e308 is not usable") from None
    if x != x or x in (float("inf"), float("-inf")):
        raise OscError(f"{what}: {x} is not a usable number")
    return x


def interpret(address: str, args: tuple, scene_count: int) -> tuple[str, tuple]:
    """Validate and clamp one command: (name without prefix, clean args), or raise OscError.

    Ints are accepted where floats are expected and whole floats where ints are (TouchOSC sends
    floats for everything); 0|1 switches read any number (>= 0.5 is on) or an OSC bool."""
    if not address.startswith(PREFIX + "/"):
        raise UnknownAddress(f"unknown address {address} (all addresses start with {PREFIX}/)")
    name = address[len(PREFIX) + 1:]
    spec = TABLE.get(name)
    if spec is None:
        raise UnknownAddress(f"unknown address {address}; see `python run.py osc`")
    kind = spec.args
    if kind == "":
        return name, ()
    if kind == "b" and name == "caption" and not args:
        return name, ()
    if not args:
        raise OscError(f"{address} needs an argument ({spec.range})")
    v = args[0]
    if kind == "f":
        x = _number(v, address)
        lo, hi = spec.bounds
        return name, (min(hi, max(lo, x)),)
    if kind == "i":
        x = _number(v, address)
        if x != int(x):
            raise OscError(f"{address} needs a whole number, got {v}")
        if name == "seed" and not 0 <= x <= 2**31 - 1:
            raise OscError(f"{address} needs a seed 0..2147483647, got {int(x)}")
        return name, (min(2**31 - 1, max(0, int(x))),)
    if kind == "b":
        if isinstance(v, bool):
            return name, (int(v),)
        return name, (1 if _number(v, address) >= 0.5 else 0,)
    if kind == "s":
        if isinstance(v, str) and not v.strip() and f"{name}/release" in TABLE:
            return f"{name}/release", ()  # an empty prompt or model lets go of the override
        if not isinstance(v, str) or not v.strip():
            raise OscError(f"{address} needs a non-empty string")
        return name, (v[:500],)
    # i|s: a scene number (clamped into the setlist) or a name
    if isinstance(v, str):
        if not v.strip():
            raise OscError(f"{address} needs a scene number 1..{max(1, scene_count)} or a scene name")
        return name, (v[:200],)
    x = int(_number(v, address))
    return name, (min(max(1, scene_count), max(1, x)),)


def parse_datagram(data: bytes, depth: int = 0) -> list[tuple[float | None, OscMessage]]:
    """(NTP timetag in seconds or None = at once, message) for every message in a packet, nested
    bundles flattened (an inner bundle's own timetag wins); raises on anything malformed."""
    if len(data) > MAX_DATAGRAM:
        raise ValueError("oversize packet")
    if data.startswith(b"#bundle\x00"):
        if depth >= MAX_BUNDLE_DEPTH:
            raise ValueError("bundles nested too deep")
        if len(data) < 16:
            raise ValueError("truncated bundle")
        sec, frac = struct.unpack(">II", data[8:16])
        tag = None if (sec, frac) == (0, 1) else sec + frac / 2**32
        out, i = [], 16
        while i < len(data):
            if i + 4 > len(data):
                raise ValueError("truncated bundle element size")
            (size,) = struct.unpack(">i", data[i:i + 4])
            if size <= 0 or size % 4 or i + 4 + size > len(data):
                raise ValueError("bad bundle element size")
            for inner_tag, msg in parse_datagram(data[i + 4:i + 4 + size], depth + 1):
                out.append((inner_tag if inner_tag is not None else tag, msg))
            i += 4 + size
        return out
    check_arguments(data)
    return [(None, OscMessage(data))]


_FIXED = {"i": 4, "f": 4, "c": 4, "r": 4, "m": 4, "h": 8, "d": 8, "t": 8, "T": 0, "F": 0, "N": 0, "I": 0}


def _padded_string_end(data: bytes, i: int) -> int:
    end = data.find(b"\x00", i)
    if end < 0:
        raise ValueError("string runs past the end of the packet")
    return (end // 4 + 1) * 4


def check_arguments(data: bytes) -> None:
    """Raise ValueError unless the arguments fill exactly what the type tags say (python-osc reads a
    missing float as 0.0: `/lectern/temperature ,f` with no data must not become temperature 0)."""
    i = _padded_string_end(data, 0)
    if i >= len(data):
        return  # no type tag string: an old-style message without arguments
    if data[i:i + 1] != b",":
        raise ValueError("no type tag string")
    j = _padded_string_end(data, i)
    tags = data[i + 1:data.index(b"\x00", i)].decode("ascii", "replace")
    for tag in tags:
        if tag in _FIXED:
            j += _FIXED[tag]
        elif tag in "sS":
            if j >= len(data):
                raise ValueError(f"type tag '{tag}' has no data")
            j = _padded_string_end(data, j)
        elif tag == "b":
            if j + 4 > len(data):
                raise ValueError("blob without its size")
            (size,) = struct.unpack(">i", data[j:j + 4])
            if size < 0:
                raise ValueError("negative blob size")
            j += 4 + (size + 3) // 4 * 4
        elif tag in "[]":
            continue
        else:
            raise ValueError(f"unknown type tag '{tag}'")
        if j > len(data):
            raise ValueError(f"arguments do not match the type tags ,{tags} (packet too short)")
    if j != len(data):
        raise ValueError(f"{len(data) - j} bytes after the arguments the type tags ,{tags} describe")


def _bundle_elements(data: bytes) -> int:
    """How many elements a bundle holds at its top level (1 for a message), read from the size
    fields alone; a broken size ends the count (the parser then refuses the packet)."""
    if not data.startswith(b"#bundle\x00"):
        return 1
    n, i = 0, 16
    while i + 4 <= len(data):
        (size,) = struct.unpack(">i", data[i:i + 4])
        if size <= 0:
            break
        n += 1
        i += 4 + size
    return max(1, n)


def _address_of(data: bytes) -> str | None:
    """The address of a plain message whose arguments could not be read (to answer it), or None."""
    if not data.startswith(b"/"):
        return None
    end = data.find(b"\x00")
    try:
        return data[:end].decode("ascii") if 0 < end <= 256 else None
    except UnicodeDecodeError:
        return None


def slip_encode(packet: bytes) -> bytes:
    """OSC 1.1 stream framing: END, the escaped packet, END."""
    body = packet.replace(bytes([SLIP_ESC]), bytes([SLIP_ESC, SLIP_ESC_ESC]))
    body = body.replace(bytes([SLIP_END]), bytes([SLIP_ESC, SLIP_ESC_END]))
    return bytes([SLIP_END]) + body + bytes([SLIP_END])


def slip_decode(frame: bytes) -> bytes:
    """One SLIP frame (without its END bytes) back to the packet; raises on a broken escape."""
    out, esc = bytearray(), False
    for b in frame:
        if esc:
            if b not in (SLIP_ESC_END, SLIP_ESC_ESC):
                raise ValueError("bad SLIP escape")
            out.append(SLIP_END if b == SLIP_ESC_END else SLIP_ESC)
            esc = False
        elif b == SLIP_ESC:
            esc = True
        else:
            out.append(b)
    if esc:
        raise ValueError("SLIP frame ends inside an escape")
    return bytes(out)


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


class OscServer:
    """A receive thread and a send thread around one UDP socket (plus an optional TCP listener).

    inbox: where accepted Commands go (the engine's bounded queue); None = an own queue, read with
    `drain()`. scene_count: how many scenes the setlist has (scene numbers are clamped to it).
    clock: the engine clock (now(), time_scale) that bundle timetags are converted to; None =
    timetags ignored, commands apply at once. rate_limit: datagrams per second per sender IP
    (also the burst size). tcp: also listen for SLIP-framed GO/PANIC on TCP at the same port.
    """

    def __init__(self, inbox: queue.Queue | None = None, *, host: str = "127.0.0.1", port: int = 9000,
                 allow: list[str] | None = None, passcode: str | None = None,
                 scene_count: Callable[[], int] = lambda: 1, clock=None, rate_limit: float = 200.0,
                 tcp: bool = True, trust_loopback: bool | None = None) -> None:
        # a loopback source cannot be forged from the network (the kernel drops such packets arriving
        # from outside), so loopback senders count as verified; the bench turns this off (argument, or
        # LECTERN_OSC_TRUST_LOOPBACK=0) to measure what a remote, spoofable sender gets
        if trust_loopback is None:
            trust_loopback = os.environ.get("LECTERN_OSC_TRUST_LOOPBACK", "1") != "0"
        self.trust_loopback = trust_loopback
        self._lockouts: dict[str, float] = {}  # ip -> locked until (monotonic)
        self._attempts = float(PASSCODE_PER_MINUTE)  # the global passcode-attempt bucket
        self._attempts_t = time.monotonic()
        self.inbox: queue.Queue = inbox if inbox is not None else queue.Queue(maxsize=4096)
        self.host = host
        self.allow = parse_allow(allow)
        self.passcode = passcode or None
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
        self._senders: dict[str, _Sender] = {}
        self._out: queue.Queue = queue.Queue(maxsize=4096)
        self._state: dict = {}
        self._state_dirty = False
        self._sent_state: dict[tuple[str, int], dict] = {}
        self._last_full = 0.0
        self._stop = threading.Event()
        self._limiter = _Limiter()
        self._tcp_clients = 0
        self._tcp_lock = threading.Lock()
        self._rx_lock = threading.Lock()
        self.counts = {"received": 0, "accepted": 0, "replied": 0, "dropped_not_allowed": 0, "dropped_rate": 0,
                       "dropped_full": 0, "malformed": 0, "unknown": 0, "invalid": 0, "coalesced": 0,
                       "not_connected": 0, "wrong_passcode": 0, "state_sent": 0, "tcp_frames": 0,
                       "passcode_limited": 0, "dropped_amplification": 0, "subscriptions_expired": 0,
                       "bytes_in": 0, "bytes_out": 0, "tcp_idle_closed": 0}
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
        out["subscribers"] = sum(1 for s in list(self._senders.values()) if s.subscribed)
        out["locked_out"] = sum(1 for t in list(self._lockouts.values()) if t > time.monotonic())
        out["pending"] = self.inbox.qsize()
        return out

    # ---- engine side --------------------------------------------------------------------------
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
        """The engine's latest snapshot (plain values; keys as in ARCHITECTURE.md). O(1): the send
        thread pushes what changed to every subscriber, and everything at least once a second."""
        self._state = state
        if not self._state_dirty:  # wake the send thread once, however often this is called
            self._wake()

    # ---- receive ------------------------------------------------------------------------------
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

    def _allowed(self, ip: str) -> bool:
        if self.allow is None:
            return True
        try:
            a = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(a in net for net in self.allow)

    def _sender(self, ip: str) -> _Sender:
        sender = self._senders.get(ip)
        if sender is None:
            if len(self._senders) >= MAX_SENDERS:  # forget strangers rather than grow forever (lockouts stay)
                self._senders = {k: v for k, v in self._senders.items() if v.authorised or v.subscribed}
            sender = self._senders[ip] = _Sender(self.rate_limit, self._trusted(ip))
        return sender

    def _trusted(self, ip: str) -> bool:
        if not self.trust_loopback:
            return False
        try:
            return ipaddress.ip_address(ip).is_loopback
        except ValueError:
            return False

    def _datagram(self, data: bytes, addr: tuple[str, int], conn: socket.socket | None = None) -> None:
        self.counts["received"] += 1
        self.counts["bytes_in"] += len(data)
        ip = addr[0]
        if not self._allowed(ip):
            self.counts["dropped_not_allowed"] += 1
            self._warn("allow", "OSC from %s ignored (not in --osc-allow)", ip)
            return
        sender = self._sender(ip)
        now = time.monotonic()
        sender.heard = now  # any message renews its subscription's lease
        if conn is not None:
            sender.verified = True  # a TCP peer completed a handshake: its address is real
        elif not sender.verified:
            sender.credit = min(MAX_CREDIT, sender.credit + len(data))
        sender.tokens = min(self.rate_limit, sender.tokens + (now - sender.last) * self.rate_limit)
        sender.last = now
        if sender.tokens < 1:
            self.counts["dropped_rate"] += 1
            self._warn("rate", "OSC from %s over the rate limit (%g/s); dropping", ip, self.rate_limit)
            return
        sender.tokens -= 1
        elements = _bundle_elements(data)  # counted before parsing: a huge bundle costs no parsing when refused
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
            address = _address_of(data)
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
        if name == "ping":  # like replies, the pong also goes to the subscribed port (oscsend exits at once)
            self._send(conn or addr, f"{PREFIX}/pong", [], sender)
            if sender.subscribed and (conn is not None or sender.subscribed != addr[1]):
                self._send((addr[0], sender.subscribed), f"{PREFIX}/pong", [], sender)
            reply(True, "pong")
            return
        if name == "connect":
            self._connect(params, sender, reply, addr[0])
            return
        if self.passcode is not None and not sender.authorised:
            self.counts["not_connected"] += 1
            reply(False, "send /lectern/connect <passcode> first")
            return
        if name == "subscribe":
            port = params[0] if params else None
            if isinstance(port, bool) or not isinstance(port, int | float) or not 1 <= port <= 65535:
                self.counts["invalid"] += 1
                reply(False, "subscribe needs a UDP port 1..65535")
                return
            if (addr[0], int(port)) == self.sock.getsockname()[:2]:
                self.counts["invalid"] += 1
                reply(False, "subscribe: that port is this server's own")
                return
            port = int(port)
            token = params[1] if len(params) > 1 else None
            if not sender.verified and not (sender.pending_port == port and token == sender.token and sender.token):
                # an address we cannot trust: the port must prove it hears us before it gets anything
                # bigger than this request (a forged source would otherwise aim state at a victim)
                sender.pending_port, sender.token = port, int.from_bytes(os.urandom(4), "big") >> 1
                self._send((addr[0], port), f"{PREFIX}/token", [sender.token], sender)
                return
            if sender.subscribed is None and self._subscriber_count() >= MAX_SUBSCRIBERS:
                self.counts["invalid"] += 1
                reply(False, f"busy: {MAX_SUBSCRIBERS} subscribers already")
                return
            sender.verified = True  # it echoed the token sent to its port: its address is real
            sender.pending_port = None
            sender.subscribed = port
            self._sent_state.pop((addr[0], port), None)  # a new subscriber gets everything at once
            self._wake()
            reply(True, f"subscribed on port {port} (renew within {SUBSCRIPTION_TTL_S:.0f} s: any message does)")
            return
        if name == "unsubscribe":
            reply(True, "unsubscribed")  # the subscribed port hears this one too
            sender.subscribed = None
            return
        try:
            name, args = interpret(address, params, self.scene_count())
        except OscError as e:
            self.counts["unknown" if isinstance(e, UnknownAddress) else "invalid"] += 1
            self._warn("invalid", "OSC %s from %s refused: %s", address, addr[0], e)
            reply(False, str(e))
            return
        try:
            due = self._due(tag)
        except OscError as e:
            self.counts["invalid"] += 1
            reply(False, str(e))
            return
        cmd = Command(f"{PREFIX}/{name}", args, source="osc", sender=addr, due=due, reply=reply,
                      received=time.monotonic())
        if self._enqueue(cmd, (name, addr[0]) if TABLE[name].fader and cmd.due is None else None):
            self.counts["accepted"] += 1
        else:
            self.counts["dropped_full"] += 1
            reply(False, "busy: too many commands waiting")

    def _connect(self, params: tuple, sender: _Sender, reply: Callable[[bool, str], None], ip: str = "") -> None:
        if self.passcode is None:
            sender.authorised = True
            reply(True, "connected (no passcode needed)")
            return
        now = time.monotonic()
        until = self._lockouts.get(ip, 0.0)
        if now < until:
            reply(False, f"too many wrong passcodes; try again in {until - now:.0f} s")
            return
        # one bucket for all senders: guesses spread over many addresses are as slow as from one
        self._attempts = min(float(PASSCODE_PER_MINUTE),
                             self._attempts + (now - self._attempts_t) * PASSCODE_PER_MINUTE / 60.0)
        self._attempts_t = now
        if self._attempts < 1:
            self.counts["passcode_limited"] += 1
            self._warn("passcode", "OSC passcode attempt from %s refused: more than %d attempts a minute in total",
                       ip, PASSCODE_PER_MINUTE)
            if now - sender.told >= 1.0:  # answered once a second per sender: a flood costs no replies
                sender.told = now
                reply(False, f"too many passcode attempts (at most {PASSCODE_PER_MINUTE} a minute); try again shortly")
            return
        self._attempts -= 1
        given = params[0] if params and isinstance(params[0], str) else ""
        if hmac.compare_digest(given.encode("utf-8", "replace"), self.passcode.encode("utf-8")):
            sender.authorised, sender.wrong = True, 0
            sender.verified = True  # it knows the passcode: answer it in full
            reply(True, "connected")
            return
        self.counts["wrong_passcode"] += 1
        self._warn("passcode", "OSC wrong passcode from %s", ip)
        sender.wrong += 1
        if sender.wrong >= PASSCODE_TRIES:
            sender.wrong = 0
            if len(self._lockouts) >= MAX_LOCKOUTS:
                self._lockouts = {k: v for k, v in self._lockouts.items() if v > now}
            if len(self._lockouts) < MAX_LOCKOUTS:
                self._lockouts[ip] = now + LOCKOUT_S
        reply(False, "wrong passcode")

    def _due(self, tag: float | None) -> float | None:
        """A future timetag as engine time; past or immediate ones apply at once."""
        if tag is None or self.clock is None:
            return None
        delay = (tag - NTP_EPOCH) - time.time()
        if delay <= 0:
            return None
        if delay > MAX_DELAY_S:
            raise OscError(f"bundle timetag {delay:.0f} s ahead; at most {MAX_DELAY_S:.0f} s allowed")
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

    # ---- TCP (SLIP) ---------------------------------------------------------------------------
    def _subscriber_count(self) -> int:
        return sum(1 for s in list(self._senders.values()) if s.subscribed)

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
            if not self._allowed(addr[0]) or self._tcp_clients >= MAX_TCP_CLIENTS:
                self.counts["dropped_not_allowed" if not self._allowed(addr[0]) else "dropped_full"] += 1
                conn.close()
                continue
            with self._tcp_lock:
                self._tcp_clients += 1
            threading.Thread(target=self._tcp_client, args=(conn, addr), name="lectern-osc-tcp-client",
                             daemon=True).start()

    def _tcp_client(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        conn.settimeout(0.5)
        buf = bytearray()
        heard = time.monotonic()
        try:
            while not self._stop.is_set():
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
                while (end := buf.find(bytes([SLIP_END]))) >= 0:
                    frame, buf = bytes(buf[:end]), buf[end + 1:]
                    if frame:
                        self.counts["tcp_frames"] += 1
                        try:
                            packet = slip_decode(frame)
                        except ValueError as e:
                            self.counts["malformed"] += 1
                            self._warn("malformed", "bad SLIP frame from %s: %s", addr[0], e)
                            continue
                        self._packet(packet, addr, conn)
                if len(buf) > MAX_DATAGRAM:  # a frame that never ends: not a controller we can serve
                    self._warn("malformed", "OSC TCP stream from %s without frame ends; closing", addr[0])
                    return
        except OSError:
            return
        finally:
            with self._tcp_lock:
                self._tcp_clients -= 1
            conn.close()

    # ---- send ---------------------------------------------------------------------------------
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

    @staticmethod
    def _build(address: str, args: list) -> bytes:
        b = OscMessageBuilder(address=address)
        for a in args:
            if isinstance(a, bool):
                b.add_arg(int(a), "i")
            elif isinstance(a, int):
                b.add_arg(a, "i")
            elif isinstance(a, float):
                b.add_arg(a, "f")
            else:  # text from a sender may hold undecodable bytes: send what can be sent
                b.add_arg(str(a).encode("utf-8", "replace").decode("utf-8"), "s")
        return b.build().dgram

    def _state_messages(self) -> dict[str, list]:
        s = self._state
        if not s:
            return {}
        out = {}
        shapes = {"scene": lambda v: [int(v[0]), str(v[1])], "standby": lambda v: [int(v[0]), str(v[1])],
                  "poem": lambda v: [int(v[0]), int(v[1])], "temperature": lambda v: [float(v)],
                  "seed": lambda v: [int(v)], "model": lambda v: [str(v)], "paused": lambda v: [int(v)],
                  "voice": lambda v: [int(v)], "volume": lambda v: [float(v)],
                  "model_override": lambda v: [str(v)], "prompt_override": lambda v: [str(v)[:200]],
                  "health": lambda v: [float(v[0]), float(v[1]), int(v[2]), int(v[3]), float(v[4])]
                  + ([str(s["served"])] if s.get("served") else [])}
        for key, shape in shapes.items():
            if key in s:
                try:
                    out[f"state/{key}"] = shape(s[key])
                except (TypeError, ValueError, IndexError):  # one odd value must not silence the others
                    self._warn("state", "OSC state %s not sendable: %r", key, s[key])
        return out

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._out.get(timeout=0.05)
                if item is not None:
                    to, address, args, sender = item
                    data = self._build(address, args)
                    if sender is not None and not sender.verified and not isinstance(to, socket.socket):
                        if len(data) > sender.credit:  # never more bytes to a spoofable address than it sent
                            self.counts["dropped_amplification"] += 1
                            continue
                        sender.credit -= len(data)
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
        for s in list(self._senders.values()):
            if s.subscribed and now - s.heard > SUBSCRIPTION_TTL_S:  # a lease not renewed: forget it
                s.subscribed = None
                self.counts["subscriptions_expired"] += 1
        subs = [(ip, s.subscribed) for ip, s in list(self._senders.items()) if s.subscribed]
        if full:
            self._last_full = now
            self._sent_state = {k: v for k, v in self._sent_state.items() if k in subs}
        if not subs:
            return
        msgs = self._state_messages()
        for to in subs:
            sent = self._sent_state.setdefault(to, {})
            for name, args in msgs.items():
                if full or sent.get(name) != args:
                    sent[name] = args
                    try:
                        data = self._build(f"{PREFIX}/{name}", args)
                        self.sock.sendto(data, to)
                        self.counts["state_sent"] += 1
                        self.counts["bytes_out"] += len(data)
                    except OSError as e:
                        self._warn("send", "OSC state send failed: %s", e)
