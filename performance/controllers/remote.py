"""The browser remote: one page served by Lectern (aiohttp, its own thread and event loop).

GET / serves assets/remote/index.html (no build step, no CDN); /ws is a WebSocket on which the page
sends commands and receives the show's state. Like the OSC server, this only validates (the same
`interpret` as OSC), clamps and enqueues Commands (source "remote"); the engine applies them and
answers through each Command's reply, which comes back on the same socket. State comes from the
one publisher: every change is pushed to every page at once, and all of it once a second.

Who gets in (a web server on a performer's laptop, reached by a browser that visits other sites):
  * the WebSocket is refused (HTTP 403, before anything is sent) unless its Origin is this remote's
    own origin: scheme, host and port as served (loopback names, the LAN address in the URL);
  * a session token (auth.new_token) is made at start and put in the URL the show announces and in
    its QR code (`#token=...`); the page keeps it and opens /ws?token=...; without it, or the
    passcode (--osc-passcode, through the process-wide guess budget of auth.py), nothing is
    accepted and no state leaves: before authentication the page hears only "hello" and "auth";
  * unauthenticated sockets have AUTH_DEADLINE_S to authenticate, at most MAX_PENDING_PER_IP per
    address, and a pool of their own (authenticated pages have MAX_CLIENTS slots nobody else takes);
  * every TCP connection is watched from accept (`_Guard`): at most MAX_CONNS at once (the newest
    evicts the oldest unauthenticated one, from the address holding the most), MAX_CONNS_PER_IP
    unauthenticated per address, headers within HEADER_TIMEOUT_S, plain requests closed after
    their answer and within HTTP_LIFETIME_S.

Protocol (JSON text frames, at most MAX_FRAME bytes):
  server → page  {"type": "hello", "passcode": bool, "authorised": bool, "token_refused": bool}
  page → server  {"type": "connect", "passcode": "..."}   (a passcode or the token)
  server → page  {"type": "auth", "ok": bool, "detail": "...", "scenes": [...], "token": "...",
                  "commands": [{"name", "args", "range", "does", "min", "max"}, ...]}  (the command table)
  page → server  {"type": "command", "address": "/lectern/go", "args": [...], "id": n}
  server → page  {"type": "reply", "id": n, "address": "...", "ok": bool, "detail": "field: ..."}
  server → page  {"type": "state", "state": {...}}
Loopback by default; --remote-host opens it to the LAN; --osc-passcode protects it too.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from performance.controllers import auth
from performance.controllers.audience_page import FILES as AUDIENCE_FILES
from performance.controllers.audience_page import AudienceDesk
from performance.controllers.remote_messages import (  # noqa: F401  (COMMANDS_FOR_PAGE, FADERS: the page's table)
    COMMANDS_FOR_PAGE,
    FADERS,
    MAX_CLIENTS,
    PageMessages,
    _Client,
)

log = logging.getLogger("lectern.remote")
ASSETS = Path(__file__).resolve().parents[2] / "assets" / "remote"
FILES = {"/": ("index.html", "text/html"), "/remote.js": ("remote.js", "application/javascript"),
         "/remote.css": ("remote.css", "text/css")}
MAX_PENDING = 32  # unauthenticated WebSockets, all addresses
MAX_PENDING_PER_IP = 4
AUTH_DEADLINE_S = 3.0
PRE_AUTH_MESSAGES = 6  # messages an unauthenticated socket may send before it is closed
MAX_CONNS = 128  # TCP connections at once (file descriptors)
MAX_CONNS_PER_IP = 16
BACKLOG = 1024  # a full accept queue drops SYNs: the phone would wait for TCP's 1 s retry  # unauthenticated ones per address
HEADER_TIMEOUT_S = 3.0
HTTP_LIFETIME_S = 10.0
MAX_HEAD = 16384
MAX_FRAME = 4096
REAP_S = 0.25


class RemoteError(OSError):
    """The remote could not be served (port in use, address not available)."""


class _Conn:
    """One TCP connection as the guard sees it: head → http | pending → authed."""

    __slots__ = ("transport", "ip", "t0", "state", "since", "tail", "head_bytes")

    def __init__(self, transport: Any, ip: str, now: float) -> None:
        self.transport = transport
        self.ip = ip
        self.t0 = now
        self.since = now
        self.state = "head"
        self.tail = b""
        self.head_bytes = 0


class _Guard(asyncio.Protocol):
    """Wraps aiohttp's RequestHandler for one connection: bookkeeping and limits, then delegation."""

    def __init__(self, server: RemoteServer, inner: Any) -> None:
        self.server = server
        self.inner = inner
        self.conn: _Conn | None = None

    def connection_made(self, transport: Any) -> None:
        peer = transport.get_extra_info("peername")
        ip = peer[0] if isinstance(peer, tuple) and peer else "?"
        self.conn = self.server._admit(transport, ip)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        c = self.conn
        if c is not None and c.state == "head":
            c.head_bytes += len(data)
            if b"\r\n\r\n" in c.tail + data:
                c.state = "http"
                c.since = time.monotonic()
            elif c.head_bytes > MAX_HEAD:
                c.transport.abort()
                return
            else:
                c.tail = data[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.server._gone(self.conn)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()








class RemoteServer(PageMessages):
    """Serves the page and its WebSockets on `host`:`port` (port 0 = a free one).

    inbox: the engine's queue. passcode: the human passcode (None = none; the session token works
    either way). token: the session token (default: a fresh one). scene_names: the setlist's scene
    names, sent after authentication. budget / guess_log: auth.py's (default: the process-wide ones)."""

    def __init__(self, inbox: queue.Queue, *, host: str = "127.0.0.1", port: int = 8080,
                 passcode: str | None = None, scene_names: Callable[[], list[str]] = list,
                 token: str | None = None, budget: auth.GuessBudget | None = None,
                 guess_log: auth.GuessLog | None = None, audience: Any = None) -> None:
        self.inbox = inbox
        # the audience page (audience_page.py): served only for a setlist with [audience]
        self.audience = AudienceDesk(self, audience) if audience is not None else None
        self.host = host
        self.passcode = passcode or None
        self.token = token or auth.new_token()
        self.gate = auth.Gate(passcode=self.passcode, token=self.token, channel="remote", budget=budget,
                              guess_log=guess_log)
        self.scene_names = scene_names
        self._want_port = port
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="lectern-remote", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._clients: set[_Client] = set()
        self._conns: dict[Any, _Conn] = {}
        self._state_json = ""
        self._version = 0
        self._pending = False
        self._hosts: set[str] = set()
        self.counts = {"connections": 0, "accepted": 0, "refused": 0, "wrong_passcode": 0, "state_sent": 0,
                       "origin_refused": 0, "evicted": 0, "deadline": 0, "tcp": 0, "internal": 0,
                       "passcode_busy": 0}

    # ---- lifecycle (any thread) ----------------------------------------------------------------
    def start(self) -> None:
        """Start serving; returns once the port is bound, or raises RemoteError."""
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise RemoteError(str(self._error)) from self._error
        if not self._ready.is_set():
            raise RemoteError("the remote's server did not start within 10 s")

    def stop(self) -> None:
        """Close every socket and stop the thread (within about a second)."""
        loop = self._loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        self._thread.join(3.0)

    def _public_host(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "", "::"):
            host = lan_address()
        return f"[{host}]" if ":" in host else host

    @property
    def url(self) -> str:
        """The page's address (the LAN address when open to the LAN), without the token."""
        return f"http://{self._public_host()}:{self.port}/"

    @property
    def token_url(self) -> str:
        """The address to give the phone: the page takes the token from the fragment and keeps it."""
        return f"{self.url}#token={self.token}"

    @property
    def audience_url(self) -> str:
        """The audience page's address (no token: it reaches nothing but the word)."""
        return f"{self.url}audience"

    @property
    def origins(self) -> set[str]:
        """Every Origin this remote accepts (its own page, under each name it is served as)."""
        return {f"http://{h}:{self.port}" for h in self._hosts}

    def qr_text(self) -> str:
        """The token URL as a QR code for a terminal."""
        return qr_for(self.token_url)

    def publish_state(self, state: dict) -> None:
        """Publisher listener: keep the snapshot and wake the event loop (O(1), never blocks)."""
        try:
            text = json.dumps(state, default=str)
        except (TypeError, ValueError):
            return
        if self.audience is not None:
            self.audience.follow(state)
        if text == self._state_json:
            return
        self._state_json = text
        self._version += 1
        loop = self._loop
        if loop is not None and not self._pending:
            self._pending = True
            try:
                loop.call_soon_threadsafe(self._fan)
            except RuntimeError:  # the loop is closing
                pass

    # ---- the event loop ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 (the caller is told through start())
            self._error = e
            self._ready.set()

    def _served_hosts(self) -> set[str]:
        hosts = {self._public_host()}
        h = self.host.strip("[]")
        if auth.is_loopback(h) or h in ("0.0.0.0", "", "::"):
            hosts |= {"127.0.0.1", "localhost", "[::1]"}
            if h not in ("0.0.0.0", "", "::", "localhost"):
                hosts.add(f"[{h}]" if ":" in h else h)
        else:
            hosts.add(f"[{h}]" if ":" in h else h)
        if h in ("0.0.0.0", "", "::"):
            name = socket.gethostname().split(".")[0]
            if name:
                hosts |= {name, f"{name}.local"}
            try:
                # lazy: the network libraries load only when this service actually starts
                import ifaddr

                for adapter in ifaddr.get_adapters():
                    for ip in adapter.ips:
                        if ip.is_IPv4:
                            hosts.add(ip.ip)
            except Exception:  # noqa: BLE001 (the LAN address above is enough)
                pass
        return {x.lower() for x in hosts}

    async def _main(self) -> None:
        # lazy: the network libraries load only when this service actually starts
        from aiohttp import web

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=MAX_FRAME)
        for path in FILES:
            app.router.add_get(path, self._file)
        app.router.add_get("/ws", self._ws)
        if self.audience is not None:
            self.audience.routes(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=HTTP_LIFETIME_S,
                               max_line_size=4096, max_field_size=4096)
        await runner.setup()
        handler_factory = runner.server
        try:
            server = await self._loop.create_server(lambda: _Guard(self, handler_factory()), self.host,
                                                    self._want_port, reuse_address=True, backlog=BACKLOG)
        except OSError as e:
            await runner.cleanup()
            raise RemoteError(f"cannot listen on {self.host}:{self._want_port} ({e.strerror})") from None
        if server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._hosts = self._served_hosts()
        self._ready.set()
        ticker = asyncio.create_task(self._tick())
        await self._stopping.wait()
        ticker.cancel()
        server.close()
        for c in list(self._clients):
            await c.ws.close()
        for conn in list(self._conns.values()):
            conn.transport.abort()
        await runner.cleanup()

    async def _shutdown(self) -> None:
        self._stopping.set()

    async def _tick(self) -> None:
        n = 0
        while True:  # deadlines four times a second; all of the state once a second
            await asyncio.sleep(REAP_S)
            self._reap()
            n += 1
            if n % round(1 / REAP_S) == 0:
                self.gate.flush()
                for c in self._clients:
                    c.sent_version = -1
                    c.wake.set()

    def _fan(self) -> None:
        self._pending = False
        for c in self._clients:
            c.wake.set()

    # ---- connections (event loop thread) -------------------------------------------------------
    def _admit(self, transport: Any, ip: str) -> _Conn:
        now = time.monotonic()
        self.counts["tcp"] += 1
        mine = [c for c in self._conns.values() if c.ip == ip and c.state != "authed"]
        if len(mine) >= MAX_CONNS_PER_IP:
            self._evict(min(mine, key=lambda c: c.t0))
        if len(self._conns) >= MAX_CONNS:
            victim = self._victim(lambda c: c.state != "authed")
            if victim is not None:
                self._evict(victim)
        conn = _Conn(transport, ip, now)
        self._conns[transport] = conn
        if len(self._conns) > MAX_CONNS:  # nothing evictable: every slot is an authenticated page
            transport.abort()
        return conn

    def _victim(self, which: Callable[[_Conn], bool]) -> _Conn | None:
        """The oldest matching connection of the address holding the most of them."""
        by_ip: dict[str, list[_Conn]] = {}
        for c in self._conns.values():
            if which(c):
                by_ip.setdefault(c.ip, []).append(c)
        if not by_ip:
            return None
        group = max(by_ip.values(), key=len)
        return min(group, key=lambda c: c.t0)

    def _evict(self, conn: _Conn) -> None:
        self.counts["evicted"] += 1
        self._conns.pop(conn.transport, None)
        conn.transport.abort()

    def _gone(self, conn: _Conn | None) -> None:
        if conn is not None:
            self._conns.pop(conn.transport, None)

    def _reap(self) -> None:
        now = time.monotonic()
        for conn in list(self._conns.values()):
            age = now - conn.since
            if ((conn.state == "head" and now - conn.t0 > HEADER_TIMEOUT_S)
                    or (conn.state == "http" and now - conn.t0 > HTTP_LIFETIME_S)
                    or (conn.state == "pending" and age > AUTH_DEADLINE_S)):
                self.counts["deadline"] += 1
                self._conns.pop(conn.transport, None)
                conn.transport.abort()

    def _pending_clients(self) -> list[_Client]:
        return [c for c in self._clients if not c.authorised]

    # ---- HTTP ----------------------------------------------------------------------------------
    async def _file(self, request: Any) -> Any:
        # lazy: the network libraries load only when this service actually starts
        from aiohttp import web

        name, ctype = FILES.get(request.path) or AUDIENCE_FILES[request.path]
        try:
            body = (ASSETS / name).read_bytes()
        except OSError:
            resp = web.Response(status=404, text=f"{name} missing from assets/remote")
        else:
            resp = web.Response(body=body, content_type=ctype,
                                headers={"Cache-Control": "no-cache", "X-Frame-Options": "DENY",
                                         "Content-Security-Policy": "default-src 'self'; connect-src 'self'; "
                                                                    "frame-ancestors 'none'",
                                         "Referrer-Policy": "no-referrer"})
        resp.force_close()  # one request per connection: nothing lingers half-open
        return resp

    def _origin_ok(self, request: Any) -> bool:
        """The page's own origin, and a Host header naming this remote (no DNS rebinding)."""
        origin = request.headers.get("Origin")
        host = (request.headers.get("Host") or "").lower()
        if not origin or origin.lower() not in self.origins:
            return False
        return host in {urlsplit(o).netloc for o in self.origins} and urlsplit(origin.lower()).netloc == host

    async def _ws(self, request: Any) -> Any:
        # lazy: the network libraries load only when this service actually starts
        from aiohttp import web

        conn = self._conns.get(request.transport)
        if not self._origin_ok(request):
            self.counts["origin_refused"] += 1
            resp = web.Response(status=403, text="this remote only answers its own page")
            resp.force_close()
            return resp
        ip = request.remote or "?"
        given = request.query.get("token")
        by_token = given is not None and self.gate.check_token(given)
        if by_token or self.gate.open:
            if sum(1 for c in self._clients if c.authorised) >= MAX_CLIENTS:
                resp = web.Response(status=503, text="too many remotes connected")
                resp.force_close()
                return resp
        else:
            await self._make_room(ip)
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=MAX_FRAME)
        try:
            await ws.prepare(request)
        except ConnectionError:  # evicted (or gone) while the handshake was answered
            gone = web.Response(status=503)
            gone.force_close()
            return gone
        c = _Client(ws, ip, conn)
        self._clients.add(c)
        self.counts["connections"] += 1
        if conn is not None:
            conn.state, conn.since = "pending", time.monotonic()
        writer = asyncio.create_task(self._writer(c))
        self._push(c, {"type": "hello", "passcode": self.passcode is not None, "authorised": by_token,
                       "token_refused": given is not None and not by_token})
        if by_token or self.gate.open:
            self._authorise(c, "connected")
        try:
            await self._listen(c, ws)
        finally:
            self._clients.discard(c)
            writer.cancel()
        return ws

    async def _make_room(self, ip: str) -> None:
        """A stranger's socket: the oldest stranger from its address (or the busiest address) goes
        when the pools are full, so sockets that never authenticate cannot keep the phone out."""
        mine = [c for c in self._pending_clients() if c.ip == ip]
        if len(mine) >= MAX_PENDING_PER_IP:
            await self._drop(min(mine, key=lambda c: c.opened))
        pending = self._pending_clients()
        if len(pending) >= MAX_PENDING:
            by_ip: dict[str, list[_Client]] = {}
            for c in pending:
                by_ip.setdefault(c.ip, []).append(c)
            await self._drop(min(max(by_ip.values(), key=len), key=lambda c: c.opened))

    async def _listen(self, c: _Client, ws: Any) -> None:
        """One page's messages until it closes (a stranger may say only a few before it must authenticate)."""
        # lazy: the network libraries load only when this service actually starts
        from aiohttp import WSMsgType

        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                try:
                    self._text(c, msg.data)
                except Exception as e:  # noqa: BLE001 (a bug must not take the socket with a traceback)
                    self.counts["internal"] += 1
                    log.error("remote: message refused after an internal error (%s: %s)", type(e).__name__, e)
                    self._reply(c, None, None, False, "message: not accepted (internal error, logged)")
            elif msg.type == WSMsgType.BINARY:
                self._reply(c, None, None, False, "message: binary frames are not accepted (JSON text)")
            if not c.authorised:
                c.messages += 1
                if c.messages >= PRE_AUTH_MESSAGES:
                    await ws.close(code=4001, message=b"authenticate first")
                    break

    async def _drop(self, c: _Client) -> None:
        self.counts["evicted"] += 1
        self._clients.discard(c)
        if c.conn is not None:
            self._conns.pop(c.conn.transport, None)
            c.conn.transport.abort()
        else:
            await c.ws.close()

    async def _writer(self, c: _Client) -> None:
        while not c.ws.closed:
            await c.wake.wait()
            c.wake.clear()
            try:
                while c.out:
                    await c.ws.send_str(c.out.popleft())
                if c.authorised and c.sent_version != self._version and self._state_json:
                    c.sent_version = self._version
                    await c.ws.send_str('{"type": "state", "state": ' + self._state_json + "}")
                    self.counts["state_sent"] += 1
            except (ConnectionError, RuntimeError):
                return









def qr_for(url: str) -> str:
    """A URL as a QR code for a terminal (segno; two rows per text line)."""
    # lazy: the network libraries load only when this service actually starts
    import segno

    buf = io.StringIO()
    segno.make(url, error="m").terminal(out=buf, compact=True, border=2)
    return buf.getvalue()


def lan_address() -> str:
    """This machine's address on the LAN (the one a UDP socket towards the outside would use)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent, only the route is looked up
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()
