"""The OSC server: UDP bytes in, validated Commands out, replies and state back.

As in python-osc, what an address means (validation, clamping: `interpret`) never touches a socket,
and the server threads only move bytes. Handlers never apply anything: the engine takes Commands
with `drain()` on its own thread and answers through each Command's `reply`.

Safety: loopback unless a host is named; an allowlist (others dropped and counted, never answered);
an optional passcode; a per-sender token bucket; a bounded queue where a burst of fader messages
(temperature, volume, speed) collapses to the newest value; malformed datagrams are counted and
logged at most a few times per interval, never raised. A bundle stamped in the future does not
stall anything: its commands carry a `due` time on the engine clock and the engine applies them then.
"""

from __future__ import annotations

import logging
import queue
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from performance.control.command import PREFIX, Command
from performance.control.osc_table import COMMANDS

log = logging.getLogger("lectern.osc")
MAX_DATAGRAM = 65507
MAX_PENDING = 256
MAX_BUNDLE_DEPTH = 8
NTP_EPOCH = 2208988800
TABLE = {a.name: a for a in COMMANDS}
QUIET = {"state", "reply", "pong"}  # our own outputs echoed back: ignored silently (no echo loops)


class _QuietPythonOsc(logging.Filter):
    """python-osc logs every unknown type tag on the root logger: one line per bad packet would
    flood an installation's log. Our own receive path counts and logs them, rate-limited."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pythonosc" not in record.pathname


_QUIET = _QuietPythonOsc()


class OscError(ValueError):
    """A message that cannot be accepted; the text is the reply's detail."""


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise OscError(f"{what} must be a number, got {type(v).__name__}")
    return float(v)


def interpret(address: str, args: tuple, scene_count: int) -> tuple[str, tuple]:
    """Validate and clamp one command. Returns (name, clean args) or raises OscError."""
    if not address.startswith(PREFIX + "/"):
        raise OscError(f"unknown address {address} (all addresses start with {PREFIX}/)")
    name = address[len(PREFIX) + 1:]
    spec = TABLE.get(name)
    if spec is None:
        raise OscError(f"unknown address {address}; see `python run.py osc`")
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
        lo, hi = {"temperature": (0.0, 3.0), "speed": (0.1, 10.0), "volume": (0.0, 1.0)}[name]
        if x != x:  # NaN
            raise OscError(f"{address}: not a number")
        return name, (min(hi, max(lo, x)),)
    if kind == "i":
        x = _number(v, address)
        if x != int(x):
            raise OscError(f"{address} needs a whole number, got {v}")
        return name, (min(2**31 - 1, max(0, int(x))),)
    if kind == "b":
        if isinstance(v, bool):
            return name, (int(v),)
        return name, (1 if _number(v, address) >= 0.5 else 0,)
    if kind == "s":
        if not isinstance(v, str) or not v.strip():
            raise OscError(f"{address} needs a non-empty string")
        return name, (v[:500],)
    # i|s: a scene number (clamped into the setlist) or a name
    if isinstance(v, str):
        return name, (v,)
    x = int(_number(v, address))
    return name, (min(max(1, scene_count), max(1, x)),)


def parse_datagram(data: bytes, depth: int = 0) -> list[tuple[float | None, OscMessage]]:
    """(ntp timetag seconds or None, message) for every message in a packet; raises on malformed."""
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
    return [(None, OscMessage(data))]


class _Sender:
    __slots__ = ("tokens", "last", "authorised", "subscribed")

    def __init__(self, burst: float) -> None:
        self.tokens = burst
        self.last = time.monotonic()
        self.authorised = False
        self.subscribed: int | None = None


class _Limiter:
    """At most `n` log lines per reason per `period` seconds."""

    def __init__(self, n: int = 3, period: float = 10.0) -> None:
        self.n, self.period = n, period
        self.seen: dict[str, list] = {}

    def ok(self, reason: str) -> bool:
        now = time.monotonic()
        w = self.seen.setdefault(reason, [now, 0])
        if now - w[0] > self.period:
            w[0], w[1] = now, 0
        w[1] += 1
        return w[1] <= self.n


class OscServer:
    """Receive thread + send thread around one UDP socket."""

    def __init__(self, inbox: queue.Queue | None = None, *, host: str = "127.0.0.1", port: int = 9000,
                 allow: list[str] | None = None, passcode: str | None = None,
                 scene_count: Callable[[], int] = lambda: 1, clock=None, rate_limit: float = 200.0) -> None:
        self.inbox = inbox  # kept for callers that pass one; commands are taken with drain()
        self.host = host
        self.allow = set(allow) if allow else None
        self.passcode = passcode
        self.scene_count = scene_count
        self.clock = clock
        self.rate_limit = rate_limit
        if _QUIET not in logging.getLogger().filters:
            logging.getLogger().addFilter(_QUIET)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:  # a burst from a controller should wait in the kernel, not be lost
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        except OSError:
            pass
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self._pending: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._seq = 0
        self._senders: dict[str, _Sender] = {}
        self._out: queue.Queue = queue.Queue(maxsize=4096)
        self._state: dict = {}
        self._sent_state: dict = {}
        self._last_full = 0.0
        self._stop = threading.Event()
        self._limiter = _Limiter()
        self.counts = {"received": 0, "accepted": 0, "replied": 0, "dropped_not_allowed": 0, "dropped_rate": 0,
                       "dropped_full": 0, "malformed": 0, "unknown": 0, "coalesced": 0, "not_connected": 0}
        self._threads = [threading.Thread(target=self._receive, name="lectern-osc-rx", daemon=True),
                         threading.Thread(target=self._send_loop, name="lectern-osc-tx", daemon=True)]

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(1.0)
        self.sock.close()

    def stats(self) -> dict:
        return dict(self.counts)

    # ---- engine side --------------------------------------------------------------------------
    def drain(self) -> list[Command]:
        """Commands waiting for the engine, oldest first; fader bursts already collapsed."""
        with self._lock:
            out = list(self._pending.values())
            self._pending.clear()
        return out

    def publish_state(self, state: dict) -> None:
        """The engine's latest snapshot; the send thread pushes what changed (and all, each second)."""
        self._state = state

    # ---- receive ------------------------------------------------------------------------------
    def _warn(self, reason: str, msg: str, *args: Any) -> None:
        if self._limiter.ok(reason):
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
            try:
                self._datagram(data, addr)
            except Exception as e:  # nothing a packet does may stop the server
                self.counts["malformed"] += 1
                self._warn("internal", "OSC packet from %s dropped: %s", addr[0], e)

    def _datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        self.counts["received"] += 1
        ip = addr[0]
        if self.allow is not None and ip not in self.allow:
            self.counts["dropped_not_allowed"] += 1
            self._warn("allow", "OSC from %s ignored (not in --osc-allow)", ip)
            return
        sender = self._senders.get(ip)
        if sender is None:
            if len(self._senders) > 1024:  # forget strangers rather than grow forever
                self._senders = {k: v for k, v in self._senders.items() if v.authorised or v.subscribed}
            sender = self._senders[ip] = _Sender(self.rate_limit)
        now = time.monotonic()
        sender.tokens = min(self.rate_limit, sender.tokens + (now - sender.last) * self.rate_limit)
        sender.last = now
        if sender.tokens < 1:
            self.counts["dropped_rate"] += 1
            self._warn("rate", "OSC from %s over the rate limit; dropping", ip)
            return
        sender.tokens -= 1
        try:
            messages = parse_datagram(data)
        except Exception as e:
            self.counts["malformed"] += 1
            self._warn("malformed", "malformed OSC packet from %s (%d bytes): %s", ip, len(data), e)
            return
        for tag, msg in messages:
            try:
                address, params = msg.address, tuple(msg.params)
            except Exception as e:
                self.counts["malformed"] += 1
                self._warn("malformed", "malformed OSC message from %s: %s", ip, e)
                continue
            self._message(address, params, addr, sender, tag)

    def _message(self, address: str, params: tuple, addr: tuple[str, int], sender: _Sender, tag: float | None) -> None:
        name = address[len(PREFIX) + 1:] if address.startswith(PREFIX + "/") else ""
        if name.split("/")[0] in QUIET:
            return
        if name == "ping":
            self._send(addr, f"{PREFIX}/pong", [])
            self._reply_to(addr, sender, address, True, "pong")
            return
        if name == "subscribe":
            port = params[0] if params else None
            if isinstance(port, bool) or not isinstance(port, int | float) or not 1 <= int(port) <= 65535:
                self._reply_to(addr, sender, address, False, "subscribe needs a UDP port 1..65535")
                return
            sender.subscribed = int(port)
            self._sent_state.pop(addr[0], None)
            self._reply_to(addr, sender, address, True, f"subscribed on port {int(port)}")
            return
        if name == "unsubscribe":
            self._reply_to(addr, sender, address, True, "unsubscribed")
            sender.subscribed = None
            return
        if name == "connect":
            ok = self.passcode is None or (bool(params) and str(params[0]) == self.passcode)
            sender.authorised = sender.authorised or ok
            self._reply_to(addr, sender, address, ok, "connected" if ok else "wrong passcode")
            return
        if self.passcode is not None and not sender.authorised:
            self.counts["not_connected"] += 1
            self._reply_to(addr, sender, address, False, "send /lectern/connect <passcode> first")
            return
        try:
            name, args = interpret(address, params, self.scene_count())
        except OscError as e:
            self.counts["unknown"] += 1
            self._warn("invalid", "OSC %s from %s refused: %s", address, addr[0], e)
            self._reply_to(addr, sender, address, False, str(e))
            return
        due = None
        if tag is not None and self.clock is not None:
            delay = (tag - NTP_EPOCH) - time.time()
            if delay > 0:
                scale = getattr(self.clock, "time_scale", 1.0)
                due = self.clock.now() + delay * scale
        reply = self._replier(addr, sender, address)
        cmd = Command(f"{PREFIX}/{name}", args, source="osc", sender=addr, due=due, reply=reply,
                      received=time.monotonic())
        spec = TABLE[name]
        with self._lock:
            if spec.fader and due is None:
                key = (name, addr[0])
                if key in self._pending:
                    self.counts["coalesced"] += 1
                    old = self._pending[key]
                    if old.reply:
                        old.reply(True, "superseded by a newer value")
                self._pending[key] = cmd
            else:
                if len(self._pending) >= MAX_PENDING:
                    self.counts["dropped_full"] += 1
                    self._reply_to(addr, sender, address, False, "busy: too many commands waiting")
                    return
                self._seq += 1
                self._pending[("cmd", self._seq)] = cmd
        self.counts["accepted"] += 1

    # ---- send ---------------------------------------------------------------------------------
    def _replier(self, addr: tuple[str, int], sender: _Sender, address: str) -> Callable[[bool, str], None]:
        def reply(ok: bool, detail: str) -> None:
            self._reply_to(addr, sender, address, ok, detail)

        return reply

    def _reply_to(self, addr: tuple[str, int], sender: _Sender, address: str, ok: bool, detail: str) -> None:
        args = [address, "ok" if ok else "error", detail]
        self._send(addr, f"{PREFIX}/reply", args)
        if sender.subscribed and sender.subscribed != addr[1]:
            self._send((addr[0], sender.subscribed), f"{PREFIX}/reply", args)
        self.counts["replied"] += 1

    def _send(self, addr: tuple[str, int], address: str, args: list) -> None:
        try:
            self._out.put_nowait((addr, address, args))
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
        out = {
            "state/scene": [int(s["scene"][0]), str(s["scene"][1])],
            "state/standby": [int(s["standby"][0]), str(s["standby"][1])],
            "state/poem": [int(s["poem"][0]), int(s["poem"][1])],
            "state/temperature": [float(s["temperature"])],
            "state/seed": [int(s["seed"])],
            "state/model": [str(s["model"])],
            "state/paused": [int(s["paused"])],
            "state/voice": [int(s["voice"])],
            "state/volume": [float(s["volume"])],
        }
        if "health" in s:
            up, fps, poems, restarts, rss = s["health"]
            out["state/health"] = [float(up), float(fps), int(poems), int(restarts), float(rss)]
        return out

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                addr, address, args = self._out.get(timeout=0.05)
                self.sock.sendto(self._build(address, args), addr)
            except queue.Empty:
                pass
            except Exception as e:  # an unsendable reply (odd text from a fuzzed packet) must not stop feedback
                self._warn("send", "OSC send failed: %s", e)
            try:
                self._push_state()
            except Exception as e:
                self._warn("send", "OSC state push failed: %s", e)

    def _push_state(self) -> None:
        subs = [(ip, s.subscribed) for ip, s in list(self._senders.items()) if s.subscribed]
        if not subs:
            return
        msgs = self._state_messages()
        now = time.monotonic()
        full = now - self._last_full >= 1.0
        if full:
            self._last_full = now
        for ip, port in subs:
            sent = self._sent_state.setdefault(ip, {})
            for name, args in msgs.items():
                if full or sent.get(name) != args:
                    sent[name] = args
                    try:
                        self.sock.sendto(self._build(f"{PREFIX}/{name}", args), (ip, port))
                    except OSError as e:
                        self._warn("send", "OSC state send failed: %s", e)
