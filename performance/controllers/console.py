"""A line console over TCP: a technician on SSH steers the show with `nc`, one command a line.

    $ nc 127.0.0.1 9100
    auth 7Yf…                  the session token (in sessions/console.token) or --osc-passcode
    ok authorised; `help` lists the commands
    go
    ok scene 4 at the next poem
    temperature 1.2
    ok temperature 1.2
    status
    scene 3 brerin · poem 12 · temperature 1.20 · seed 41 · playing

Every line goes through the one validator (performance.protocol.commands), so the console can do
exactly what OSC can, no more. This file is the example to copy for a new controller: one class
implementing `Controller`, plus one line in registry.py.

Hostile by default: loopback unless told otherwise; nothing but `auth` before authentication, with
a deadline; wrong secrets share the process-wide guess budget (auth.py); a first line that looks
like HTTP (a web page aiming the browser at this port) closes the connection at once; lines,
connections per address, connections in total and idle time are all bounded.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

from performance.controllers import auth
from performance.controllers.base import Context, Controller, Unavailable
from performance.controllers.inbox import Inbox, put_latest
from performance.protocol.commands import PREFIX, TABLE, CommandError, network_commands, validate
from performance.protocol.snapshot import Snapshot

log = logging.getLogger("lectern.console")
MAX_LINE = 1024  # bytes in one line (a prompt of 2,000 characters does not fit: use OSC for that)
MAX_CLIENTS = 4  # authenticated technicians at once
MAX_PENDING = 8  # connections not yet authorised, all addresses together
MAX_PENDING_PER_IP = 2
AUTH_DEADLINE_S = 5.0
IDLE_S = 600.0  # an authorised connection silent this long is closed
LINES_PER_S = 20.0
HTTP_WORDS = ("GET ", "POST ", "PUT ", "HEAD ", "OPTIONS ", "DELETE ", "PATCH ", "CONNECT ", "PRI ")
TOKEN_FILE = "console.token"


def parse_line(line: str, scene_count: int):
    """One console line ("temperature 1.2", "/lectern/scene 3", "prompt the grey sea") to a
    validated Command (without its reply), or CommandError with the line to answer."""
    word, _, rest = line.strip().partition(" ")
    name = word.removeprefix(PREFIX + "/").removeprefix("/")
    spec = TABLE.get(name)
    rest = rest.strip()
    args: tuple = ()
    if spec is not None and rest:
        if spec.args in ("s",) or (spec.args == "i|s" and not rest.lstrip("-").isdigit()):
            args = (rest,)
        else:
            try:
                args = (int(rest),) if rest.lstrip("-").isdigit() else (float(rest),)
            except ValueError:
                raise CommandError(f"{name}: {rest[:40]!r} is not a number ({spec.range})") from None
    return validate(name, args, scene_count=scene_count, source="console", received=time.monotonic())


def status_line(s: Snapshot) -> str:
    """The show in one line, for `status` and `watch`."""
    n, of = s.poem
    state = "BLACKOUT" if s.blackout else ("paused" if s.paused else s.state)
    over = " (override)" if s.override is not None else ""
    cue = s.cue_text()
    return (f"scene {s.scene[0]} {s.scene[1]} · poem {n}{f' of {of}' if of else ''} · temperature "
            f"{s.temperature:.2f}{over} · seed {s.seed} · {s.model} · {state}" + (f" · {cue}" if cue else ""))


def help_text() -> str:
    lines = ["commands (as in `python run.py osc`; arguments after a space):"]
    for c in network_commands():
        lines.append(f"  {c.name:<20} {c.range or ''}".rstrip())
    lines += ["  status               the show in one line", "  watch                a status line on every change (again: off)",
              "  bye                  close this connection"]
    return "\n".join(lines)


class _Conn:
    """One connection: its socket, its thread, what it may do."""

    def __init__(self, sock: socket.socket, ip: str) -> None:
        self.sock, self.ip = sock, ip
        self.authorised = False
        self.watching = False
        self.out: queue.Queue[str] = queue.Queue(maxsize=256)  # lines to send, from any thread
        self.opened = self.heard = time.monotonic()
        self.allowance = LINES_PER_S
        self.closed = False

    def say(self, text: str) -> None:
        """Queue a reply (never blocks; a connection that does not read loses lines, not the show)."""
        try:
            self.out.put_nowait(text.replace("\r", " ") + "\n")
        except queue.Full:
            pass


class Console(Controller):
    """The TCP line console (--console PORT)."""

    name = "console"

    def __init__(self, host: str, port: int, passcode: str | None, token: str, ctx: Context) -> None:
        self.host, self.want_port, self.passcode, self.ctx = host, port, passcode, ctx
        self.gate = auth.Gate(passcode=passcode, token=token, channel="console")
        self.token = token
        self.port = port
        self.inbox: Inbox | None = None
        self.sock: socket.socket | None = None
        self._conns: list[_Conn] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._snap = Snapshot()
        self._last_line = ""
        self._thread: threading.Thread | None = None

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("line console (a technician's `nc`)")
        g.add_argument("--console", type=int, metavar="PORT", help="a TCP line console on this port (off by default)")
        g.add_argument("--console-host", default="127.0.0.1", metavar="H", help="address it listens on (default loopback)")

    @classmethod
    def check_args(cls, args: argparse.Namespace, setlist) -> str | None:
        port = getattr(args, "console", None)
        if port is None:
            return None
        if not 0 <= port <= 65535:
            return f"--console {port}: a TCP port 0..65535 (0 = any free one)"
        if (not auth.is_loopback(args.console_host) and not getattr(args, "osc_passcode", None)
                and not getattr(args, "allow_open_network", False)):
            return (f"--console-host {args.console_host}: the console beyond loopback needs --osc-passcode "
                    f"(or say {auth.ALLOW_FLAG})")
        return None

    @classmethod
    def from_args(cls, args: argparse.Namespace, ctx: Context) -> Console | None:
        if getattr(args, "console", None) is None:
            return None
        return cls(args.console_host, args.console, getattr(args, "osc_passcode", None), ctx.extras["token"], ctx)

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self, inbox: Inbox) -> None:
        self.inbox = inbox
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.want_port))
        except OSError as e:
            sock.close()
            raise Unavailable(f"console: cannot listen on {self.host}:{self.want_port} ({e.strerror}); "
                              "continuing without it") from None
        sock.listen(16)
        sock.settimeout(0.5)
        self.sock, self.port = sock, sock.getsockname()[1]
        self._write_token_file()
        self._thread = threading.Thread(target=self._accept_loop, name="lectern-console", daemon=True)
        self._thread.start()
        log.warning("console: nc %s %d, then `auth` and the token in %s", self.host, self.port,
                    Path(self.ctx.session_dir) / TOKEN_FILE)

    def _write_token_file(self) -> None:
        """The token where a technician's shell can read it (only its owner may): sessions/console.token."""
        try:
            path = Path(self.ctx.session_dir) / TOKEN_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.token + "\n")
        except OSError as e:
            log.error("console: token file not written (%s); the token is %s", e.strerror, self.token)

    def stop(self) -> None:
        self._stop.set()
        if self.sock is not None:
            self.sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            self._close(c)
        if self._thread is not None:
            self._thread.join(2.0)

    def on_state(self, snap: Snapshot) -> None:
        self._snap = snap
        line = status_line(snap)
        if line == self._last_line:
            return
        self._last_line = line
        with self._lock:
            watchers = [c for c in self._conns if c.watching]
        for c in watchers:
            c.say("state " + line)

    def status(self) -> dict[str, str]:
        return {"console": f"{self.host}:{self.port}"} if self.sock is not None else {}

    def private_status(self) -> dict[str, str]:
        if self.sock is None:
            return {}
        return {"console login": f"nc {self.host} {self.port}, then: auth {self.token}"}

    # ---- connections -----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, addr = self.sock.accept()
            except TimeoutError:
                self._expire()
                continue
            except OSError:
                return
            self._admit(sock, addr[0])

    def _admit(self, sock: socket.socket, ip: str) -> None:
        with self._lock:
            pending = [c for c in self._conns if not c.authorised]
            crowded = len(pending) >= MAX_PENDING or sum(c.ip == ip for c in pending) >= MAX_PENDING_PER_IP
            if crowded:  # the oldest stranger makes room: a technician is never kept out by idle sockets
                oldest = min(pending, key=lambda c: c.opened)
                self._conns.remove(oldest)
        if crowded:
            self._close(oldest)
        conn = _Conn(sock, ip)
        sock.settimeout(0.25)
        with self._lock:
            self._conns.append(conn)
        conn.say("lectern console: `auth TOKEN` first (the token is in the session folder's console.token)")
        threading.Thread(target=self._serve, args=(conn,), name="lectern-console-client", daemon=True).start()

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [c for c in self._conns if (not c.authorised and now - c.opened > AUTH_DEADLINE_S)
                    or now - c.heard > IDLE_S]
        for c in late:
            self._close(c)

    def _close(self, c: _Conn) -> None:
        c.closed = True
        with self._lock:
            if c in self._conns:
                self._conns.remove(c)
        try:
            c.sock.close()
        except OSError:
            pass

    def _serve(self, c: _Conn) -> None:
        buf = b""
        try:
            while not (c.closed or self._stop.is_set()):
                self._flush(c)
                try:
                    data = c.sock.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    break
                buf += data
                while b"\n" in buf and not c.closed:
                    raw, buf = buf.split(b"\n", 1)
                    self._line(c, raw)
                if len(buf) > MAX_LINE:
                    c.say(f"error a line of at most {MAX_LINE} bytes")
                    self._flush(c)
                    break
        except OSError:
            pass
        finally:
            self._close(c)

    def _flush(self, c: _Conn) -> None:
        while True:
            try:
                text = c.out.get_nowait()
            except queue.Empty:
                return
            try:
                c.sock.sendall(text.encode("utf-8", "replace"))
            except OSError:
                c.closed = True
                return

    def _line(self, c: _Conn, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").strip()
        now = time.monotonic()
        c.allowance = min(LINES_PER_S, c.allowance + (now - c.heard) * LINES_PER_S)
        c.heard = now
        if c.allowance < 1:
            return  # over the rate: dropped, unanswered
        c.allowance -= 1
        if not line:
            return
        if not c.authorised:
            self._auth(c, line)
            return
        self._command(c, line)

    def _auth(self, c: _Conn, line: str) -> None:
        if line.upper().startswith(HTTP_WORDS) or "HTTP/" in line:
            self._close(c)  # a browser sent here by a web page: not a technician
            return
        word, _, secret = line.partition(" ")
        if word != "auth":
            c.say("error send `auth TOKEN` first")
            return
        secret = secret.strip()
        if self.gate.check_token(secret):
            ok = True
        else:
            verdict = self.gate.check_passcode(secret, c.ip) if self.passcode else auth.Verdict.WRONG
            ok = verdict is auth.Verdict.OK
            if verdict is auth.Verdict.BUSY:
                c.say("error too many wrong secrets lately (all interfaces together); try the token, or later")
                return
        if not ok:
            c.say("error wrong token or passcode")
            return
        with self._lock:
            authorised = sum(x.authorised for x in self._conns)
        if authorised >= MAX_CLIENTS:
            c.say(f"error busy: {MAX_CLIENTS} consoles open already")
            self._flush(c)
            self._close(c)
            return
        c.authorised = True
        c.say("ok authorised; `help` lists the commands")

    def _command(self, c: _Conn, line: str) -> None:
        word = line.split(" ", 1)[0]
        if word == "help":
            c.say(help_text())
        elif word == "status":
            c.say(status_line(self._snap))
        elif word == "watch":
            c.watching = not c.watching
            c.say(f"ok watch {'on' if c.watching else 'off'}")
        elif word in ("bye", "quit", "exit"):
            c.say("ok bye")
            self._flush(c)
            self._close(c)
        else:
            self._submit(c, line)

    def _submit(self, c: _Conn, line: str) -> None:
        try:
            cmd = parse_line(line, self.ctx.scene_count())
        except CommandError as e:
            c.say(f"error {e}")
            return
        cmd = replace(cmd, sender=(c.ip, 0), reply=lambda ok, detail: c.say(f"{'ok' if ok else 'error'} {detail}"))
        if put_latest(self.inbox, cmd, None) == "full":
            c.say("error busy: too many commands waiting")
