"""A small HTTP + server-sent-events client for OpenAI-compatible servers (stdlib only).

It runs on the generator worker, never in the frame loop. Every failure is a `ServedError` whose
text is one line naming the endpoint and what went wrong, and every connection it opens is closed
by the time it returns or raises (or, for a stream, when the stream ends or is closed).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from performance.textgen.base import ServedError

MAX_LINE = 1 << 20  # an SSE line longer than this is nonsense, not a token
MAX_JSON = 4 << 20  # a whole (non-streamed) JSON answer


class TokenClock:
    """How long the reader of a stream may still wait for the next token.

    The consumer calls `restart()` when it starts waiting for a token; the reader gives up once
    `seconds` have passed, whatever bytes arrive meanwhile (keep-alive comments, empty chunks), or
    at `hard` (a time.monotonic() instant) if that comes first, e.g. the end of a check.
    """

    def __init__(self, seconds: float, hard: float | None = None) -> None:
        self.seconds = seconds
        self.hard = hard
        self.until: float | None = None
        self.why = ""

    def restart(self) -> None:
        now = time.monotonic()
        self.until, self.why = now + self.seconds, f"no token within {self.seconds:g} s (patience_s)"
        if self.hard is not None and self.hard < self.until:
            self.until, self.why = self.hard, "no token before the deadline"

    def left(self) -> float | None:
        return None if self.until is None else self.until - time.monotonic()


class Endpoint:
    """A base URL such as http://127.0.0.1:8080/v1, with an optional bearer key and a timeout.

    timeout bounds the connection and every wait for the next bytes, so a stopped server is
    noticed within `timeout` seconds, not at the end of the poem. A stream read with a TokenClock
    is also bounded by the time since the last token, which bytes that carry no token do not reset.
    """

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 5.0,
                 first_timeout: float | None = None) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url {base_url!r}: must be http://HOST[:PORT]/PATH or https://...")
        self.base_url = base_url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.path = parts.path
        self.api_key = api_key
        self.timeout = timeout
        self.first_timeout = max(timeout, first_timeout or timeout)  # the prompt is read before the first token

    def _conn(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout)

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def _open(self, method: str, route: str, body: dict | None, timeout: float, wait: float | None = None,
              why: str = "") -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, socket.socket]:
        """Connect within `timeout`, then wait up to `wait` (default: timeout) for the answer. The
        caller closes the connection it gets back; on any failure it is already closed."""
        url = self.base_url + route
        conn = self._conn(timeout)
        try:
            conn.connect()
            sock = conn.sock
            if wait is not None:
                sock.settimeout(wait)
            conn.request(method, self.path + route, body=json.dumps(body) if body is not None else None,
                         headers=self._headers())
            resp = conn.getresponse()
        except ConnectionRefusedError:
            conn.close()
            raise ServedError(f"{url}: connection refused (is the server running?)") from None
        except TimeoutError:
            conn.close()
            raise ServedError(f"{url}: {why or f'no answer within {wait or timeout:g} s (timeout)'}") from None
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise ServedError(f"{url}: {type(e).__name__}: {_short(e)}") from None
        if resp.status >= 400:
            detail = _error_detail(resp)
            _close(conn, resp)
            raise ServedError(f"{url}: HTTP {resp.status} {resp.reason}: {detail}")
        return conn, resp, sock

    def get_json(self, route: str, timeout: float | None = None) -> dict:
        """GET a JSON document (e.g. /models)."""
        t = self.timeout if timeout is None else timeout
        conn, resp, _ = self._open("GET", route, None, t)
        try:
            data = json.loads(resp.read(MAX_JSON + 1))
        except TimeoutError:
            raise ServedError(f"{self.base_url + route}: no answer within {t:g} s (timeout)") from None
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise ServedError(f"{self.base_url + route}: unreadable answer ({type(e).__name__}), "
                              f"not the JSON an OpenAI-compatible server sends") from None
        finally:
            _close(conn, resp)
        if not isinstance(data, dict):
            raise ServedError(f"{self.base_url + route}: answer is not a JSON object")
        return data

    def stream(self, route: str, body: dict, clock: TokenClock | None = None) -> Iterator[dict]:
        """POST with stream=true and yield each SSE `data:` event as a dict, until [DONE].

        A stream that ends without [DONE], an event that is not JSON, or an `error` event raise
        ServedError. The first event may take `first_timeout` (the server reads the prompt first);
        after it, a gap longer than `timeout` is a stall. With a `clock`, the reader also gives up
        when the clock runs out, however many bytes without a token came meanwhile. A server that
        ignores stream=true and answers one JSON document gives that document as the one event.
        """
        url = self.base_url + route
        wait, why = self.first_timeout, ""
        left = clock.left() if clock is not None else None
        if left is not None and left < wait:
            if left <= 0:
                raise ServedError(f"{url}: {clock.why}")
            wait, why = left, clock.why
        conn, resp, sock = self._open("POST", route, body, min(self.timeout, wait), wait, why)
        events, comments = 0, 0
        try:
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if ctype == "application/json":
                yield self._whole(url, resp)
                return
            if ctype and ctype != "text/event-stream":
                raise ServedError(f"{url}: answered {ctype}, not an event stream (is base_url an "
                                  f"OpenAI-compatible API?)")
            buf = b""
            data_lines: list[str] = []
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > MAX_LINE:
                        raise ServedError(f"{url}: malformed stream after {events} events (a line over "
                                          f"{MAX_LINE >> 20} MiB)")
                    buf += self._read_chunk(url, resp, sock, clock, events, comments)
                    continue
                raw, buf = buf[:nl], buf[nl + 1:]
                line = raw.decode("utf-8", "replace").rstrip("\r")
                if line.startswith("data:"):
                    data_lines.append(line[5:].lstrip(" "))
                    continue
                if line.startswith(":"):
                    comments += 1
                if line or not data_lines:  # comments (":"), event:/id:/retry: fields, keep-alive blanks
                    continue
                payload = "\n".join(data_lines)
                data_lines = []
                if payload.strip() == "[DONE]":
                    return
                event = _event(url, payload, events)
                events += 1
                yield event
        finally:
            _close(conn, resp)

    def _read_chunk(self, url: str, resp: http.client.HTTPResponse, sock, clock: TokenClock | None,
                    events: int, comments: int) -> bytes:
        """The next bytes of the stream, waiting no longer than the first or the later timeout, or
        what the clock has left if that is sooner; a stall, a cut or a closed connection raise
        ServedError saying how far the stream had come."""
        limit, why = (self.timeout if events else self.first_timeout), ""
        left = clock.left() if clock is not None else None
        if left is not None and left < limit:
            if left <= 0:
                raise ServedError(f"{url}: {clock.why}" + _after(events, comments))
            limit, why = left, clock.why
        sock.settimeout(limit)
        try:
            chunk = resp.read1(65536)
        except TimeoutError:
            if why:
                raise ServedError(f"{url}: {why}" + _after(events, comments)) from None
            raise ServedError(f"{url}: stream stalled, nothing for {limit:g} s after "
                              f"{events} events (timeout)") from None
        except (OSError, http.client.HTTPException) as e:
            raise ServedError(f"{url}: stream cut after {events} events ({type(e).__name__})") from None
        if not chunk:
            raise ServedError(f"{url}: stream cut after {events} events (connection closed before [DONE])")
        return chunk

    def _whole(self, url: str, resp: http.client.HTTPResponse) -> dict:
        """A non-streamed answer: one JSON document, read within the timeout."""
        try:
            payload = resp.read(MAX_JSON + 1).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as e:
            raise ServedError(f"{url}: unreadable answer ({type(e).__name__})") from None
        if len(payload) > MAX_JSON:
            raise ServedError(f"{url}: answer over {MAX_JSON >> 20} MiB")
        return _event(url, payload, 0)


def _event(url: str, payload: str, events: int) -> dict:
    try:
        event = json.loads(payload)
    except ValueError:
        raise ServedError(f"{url}: malformed event after {events} events: {payload[:60]!r}") from None
    if not isinstance(event, dict):
        raise ServedError(f"{url}: malformed event after {events} events: {payload[:60]!r}")
    if "error" in event:
        err = event["error"]
        msg = err.get("message", err) if isinstance(err, dict) else err
        raise ServedError(f"{url}: server error mid-stream: {' '.join(str(msg).split())[:120]}")
    return event


def _after(events: int, comments: int) -> str:
    return f" ({events} events" + (f", {comments} keep-alive comments)" if comments else ")")


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:160]


def _close(conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
    resp.close()
    conn.close()


def _error_detail(resp: http.client.HTTPResponse) -> str:
    """The server's own error message, one line, from an error body (JSON or text)."""
    try:
        body = resp.read(4096)
    except (OSError, http.client.HTTPException):
        return "(no body)"
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
        err = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
        if isinstance(err, dict):
            err = err.get("message", err)
        text = str(err)
    except ValueError:
        pass
    return " ".join(text.split())[:160] or "(no body)"
