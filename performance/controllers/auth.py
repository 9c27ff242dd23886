"""Who may steer the show: session tokens, passcodes and one guess budget for the whole process.

Two kinds of secret:
  * the session token: made at start (`new_token`, 192 random bits), far too long to guess, so it
    is always checked (constant time) and never counts against anything: a guesser can never lock
    out the operator who holds it (the remote's QR code carries it);
  * the passcode (`--osc-passcode`): short and human, so every check of it goes through one
    process-wide `GuessBudget` shared by every interface (remote, and OSC UDP/TCP when they adopt
    it): at most `limit` wrong guesses per `window` seconds in total, whatever the source address.
    Once the budget is spent, further passcodes are refused *without being compared* until the
    oldest wrong guess leaves the window.

Wrong guesses are logged by `GuessLog`: the first at once, then one summary line per interval
with the count, the interfaces and the addresses (a spray from 200 addresses is a few lines).

Adopting it from another server (a thread of its own is fine: everything here is locked):

    gate = Gate(passcode=args.osc_passcode, token=None, channel="osc-udp")
    verdict = gate.check_passcode(given, source=ip)   # Verdict.OK / WRONG / BUSY
    ...
    gate.flush()   # now and then (once a second): emits a pending summary line

`open_network_refusal` is the start-up check: listening beyond loopback with nothing to protect it.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import logging
import multiprocessing
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("lectern.auth")
GUESSES_PER_MINUTE = 10
LOG_INTERVAL_S = 10.0
TOKEN_BYTES = 24  # 192 bits; 32 URL-safe characters
MAX_SECRET = 256  # longer inputs are refused before any comparison


class Verdict(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    BUSY = "busy"  # the budget is spent: not compared


def new_token() -> str:
    """A fresh session token (URL-safe text)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def same_secret(given: object, secret: str) -> bool:
    """Constant-time comparison (in the secret's length); anything but text is simply wrong."""
    if not isinstance(given, str) or len(given) > MAX_SECRET:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), secret.encode("utf-8", "surrogatepass"))


class GuessLog:
    """Rate-limited logging of wrong guesses: one line per `interval` seconds at most."""

    def __init__(self, interval: float = LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log) -> None:
        self.interval = interval
        self.clock = clock
        self.logger = logger
        self._lock = threading.Lock()
        self._last = -1e18
        self._wrong = 0
        self._busy = 0
        self._sources: dict[str, int] = {}
        self._channels: set[str] = set()
        self.lines = 0

    def note(self, source: str, channel: str, busy: bool = False) -> None:
        with self._lock:
            if busy:
                self._busy += 1
            else:
                self._wrong += 1
            if len(self._sources) < 10_000 or source in self._sources:  # bounded memory
                self._sources[source] = self._sources.get(source, 0) + 1
            self._channels.add(channel)
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Emit the pending summary if the interval has passed (or `force`)."""
        with self._lock:
            now = self.clock()
            if not (self._wrong or self._busy) or (not force and now - self._last < self.interval):
                return
            top = sorted(self._sources.items(), key=lambda kv: -kv[1])
            shown = ", ".join(ip for ip, _ in top[:5]) + (f" and {len(top) - 5} more" if len(top) > 5 else "")
            parts = [f"{self._wrong} wrong passcode{'s' if self._wrong != 1 else ''}"]
            if self._busy:
                parts.append(f"{self._busy} refused unchecked (budget of {GUESSES_PER_MINUTE}/min spent)")
            line = (f"auth: {'; '.join(parts)} on {', '.join(sorted(self._channels))} from {len(top)} "
                    f"address{'es' if len(top) != 1 else ''} ({shown})")
            self._wrong = self._busy = 0
            self._sources.clear()
            self._channels.clear()
            self._last = now
            self.lines += 1
        self.logger.warning("%s", line)


class _Spent:
    """The budget's spent guesses: their times, oldest first, and two counters, behind one lock.
    This one lives in this process; `_SharedSpent` is the same in shared memory."""

    def __init__(self, limit: int) -> None:
        self.lock: Any = threading.Lock()
        self.times: list[float] = []
        self.checked = 0
        self.refused = 0

    def expire(self, before: float) -> None:
        while self.times and self.times[0] <= before:
            del self.times[0]

    def __len__(self) -> int:
        return len(self.times)

    def append(self, t: float) -> None:
        self.times.append(t)

    def pop(self) -> None:
        self.times.pop()

    def oldest(self) -> float:
        return self.times[0]


class _SharedSpent:
    """`_Spent` in shared memory (a spawn-context lock and raw arrays), picklable to a child process:
    the remote's own process spends the same budget as OSC and the console in this one. The clock
    is CLOCK_MONOTONIC, the same in every process of the machine."""

    def __init__(self, limit: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.lock = ctx.Lock()
        self._times = ctx.RawArray("d", limit)
        self._n = ctx.RawArray("q", 3)  # length, checked, refused

    checked = property(lambda self: self._n[1], lambda self, v: self._n.__setitem__(1, v))
    refused = property(lambda self: self._n[2], lambda self, v: self._n.__setitem__(2, v))

    def expire(self, before: float) -> None:
        n = self._n[0]
        k = 0
        while k < n and self._times[k] <= before:
            k += 1
        if k:
            self._times[: n - k] = self._times[k:n]
            self._n[0] = n - k

    def __len__(self) -> int:
        return self._n[0]

    def append(self, t: float) -> None:
        self._times[self._n[0]] = t
        self._n[0] += 1

    def pop(self) -> None:
        self._n[0] -= 1

    def oldest(self) -> float:
        return self._times[0]


class GuessBudget:
    """At most `limit` wrong passcodes per `window` seconds, in total, for everyone (thread-safe;
    after `share()`, process-safe too).

    `take()` reserves a check before comparing (so concurrent checks cannot overrun the limit);
    `refund()` gives it back when the passcode was right."""

    def __init__(self, limit: int = GUESSES_PER_MINUTE, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, spent: _Spent | _SharedSpent | None = None) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._spent = spent if spent is not None else _Spent(limit)

    @property
    def checked(self) -> int:
        """Passcodes compared (right or wrong)."""
        return self._spent.checked

    @property
    def refused(self) -> int:
        """Passcodes refused unchecked."""
        return self._spent.refused

    def share(self) -> _SharedSpent:
        """Move this budget into shared memory (what is spent so far comes along) and return the
        handle a child process passes to `GuessBudget(spent=...)` to spend the same budget."""
        if isinstance(self._spent, _SharedSpent):
            return self._spent
        shared = _SharedSpent(self.limit)
        with self._spent.lock:
            self._spent.expire(self.clock() - self.window)
            for t in self._spent.times:
                shared.append(t)
            shared.checked, shared.refused = self._spent.checked, self._spent.refused
            self._spent = shared
        return shared

    def unshare(self) -> None:
        """Back into this process alone (the child has ended): its shared lock is released, so no
        semaphore is left for the resource tracker to warn about at exit."""
        if isinstance(self._spent, _SharedSpent):
            local = _Spent(self.limit)
            with self._spent.lock:
                local.times = [self._spent._times[i] for i in range(len(self._spent))]
                local.checked, local.refused = self._spent.checked, self._spent.refused
            self._spent = local

    def take(self) -> bool:
        with self._spent.lock:
            now = self.clock()
            self._spent.expire(now - self.window)
            if len(self._spent) >= self.limit:
                self._spent.refused += 1
                return False
            self._spent.append(now)
            self._spent.checked += 1
            return True

    def refund(self) -> None:
        with self._spent.lock:
            if len(self._spent):
                self._spent.pop()

    def retry_in(self) -> float:
        """Seconds until a passcode will be checked again (0 = now)."""
        with self._spent.lock:
            now = self.clock()
            self._spent.expire(now - self.window)
            if len(self._spent) < self.limit:
                return 0.0
            return max(0.0, self.window - (now - self._spent.oldest()))


_SHARED_BUDGET = GuessBudget()
_SHARED_LOG = GuessLog()


def shared_budget() -> GuessBudget:
    """The one budget of this process (every interface)."""
    return _SHARED_BUDGET


def shared_log() -> GuessLog:
    return _SHARED_LOG


class Gate:
    """The secrets of one interface: `token` (checked freely) and `passcode` (through the budget).

    channel: a short name for the log ("remote", "osc-udp", "osc-tcp")."""

    def __init__(self, *, passcode: str | None, token: str | None, channel: str,
                 budget: GuessBudget | None = None, guess_log: GuessLog | None = None) -> None:
        self.passcode = passcode or None
        self.token = token or None
        self.channel = channel
        self.budget = budget or shared_budget()
        self.log = guess_log or shared_log()

    @property
    def open(self) -> bool:
        """No secret at all: everyone is let in."""
        return self.passcode is None and self.token is None

    def check_token(self, given: object) -> bool:
        """The session token: constant time, outside the budget, not logged as a guess."""
        return self.token is not None and same_secret(given, self.token)

    def check_passcode(self, given: object, source: str) -> Verdict:
        """A passcode attempt: BUSY (not compared) when the shared budget is spent."""
        if self.passcode is None:
            return Verdict.WRONG
        if not self.budget.take():
            self.log.note(source, self.channel, busy=True)
            return Verdict.BUSY
        if same_secret(given, self.passcode):
            self.budget.refund()
            return Verdict.OK
        self.log.note(source, self.channel)
        return Verdict.WRONG

    def flush(self) -> None:
        self.log.flush()


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps a server on this machine ("" and 0.0.0.0 do not)."""
    if host in ("localhost",):
        return True
    if host in ("", "0.0.0.0", "::"):
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback
                       for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP))
        except (OSError, ValueError):
            return False


ALLOW_FLAG = "--allow-open-network"


def open_network_refusal(*, osc_host: str | None, osc_passcode: str | None, remote_host: str | None,
                         remote_token: bool = True, osc_allow: str | None = None,
                         allow_open: bool = False) -> str | None:
    """One line refusing to listen beyond loopback with nothing protecting it, or None.

    osc_host / remote_host: where each listens (None = that interface is off). The remote always
    has a session token (remote_token) so it is protected even without a passcode; OSC is only
    protected by the passcode (or, weaker, by naming the senders with --osc-allow)."""
    if allow_open:
        return None
    if osc_host is not None and not osc_passcode and not osc_allow and not is_loopback(osc_host):
        return (f"--osc-host {osc_host or '(every interface)'} opens OSC to the network without a passcode: "
                f"anyone there could steer the show; give --osc-passcode CODE (or --osc-allow IP), or say {ALLOW_FLAG}")
    if remote_host is not None and not osc_passcode and not remote_token and not is_loopback(remote_host):
        return (f"--remote-host {remote_host} opens the remote to the network without a passcode or token; "
                f"give --osc-passcode CODE, or say {ALLOW_FLAG}")
    return None
