"""A small HTTP + server-sent-events client for OpenAI-compatible servers (stdlib only).

It runs on the generator worker, never in the frame loop. Every failure is a `ServedError` whose
text is one line naming the endpoint and what went wrong.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from performance.textgen.base import ServedError


class Endpoint:
    """A base URL such as http://127.0.0.1:8080/v1, with an optional bearer key and a timeout.

    timeout bounds the connection and every wait for the next bytes, so a stopped server is
    noticed within `timeout` seconds, not at the end of the poem.
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

    def _open(self, method: str, route: str, body: dict | None, timeout: float,
              wait: float | None = None) -> tuple[http.client.HTTPResponse, socket.socket | None]:
        """Connect within `timeout`, then wait up to `wait` (default: timeout) for the answer."""
        url = self.base_url + route
        conn = self._conn(timeout)
        try:
            conn.connect()
            sock = conn.sock
            if wait is not None and sock is not None:
                sock.settimeout(wait)
            conn.request(method, self.path + route, body=json.dumps(body) if body is not None else None,
                         headers=self._headers())
            resp = conn.getresponse()
        except ConnectionRefusedError:
            conn.close()
            raise ServedError(f"{url}: connection refused (is the server running?)") from None
        except TimeoutError:
            conn.close()
            raise ServedError(f"{url}: no answer within {wait or timeout:g} s (timeout)") from None
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise ServedError(f"{url}: {type(e).__name__}: {e}") from None
        if resp.status >= 400:
            detail = _error_detail(resp)
            conn.close()
            raise ServedError(f"{url}: HTTP {resp.status} {resp.reason}: {detail}")
        return resp, sock

    def get_json(self, route: str, timeout: float | None = None) -> dict:
        """GET a JSON document (e.g. /models)."""
        t = self.timeout if timeout is None else timeout
        resp, _ = self._open("GET", route, None, t)
        try:
            data = json.loads(resp.read())
        except TimeoutError:
            raise ServedError(f"{self.base_url + route}: no answer within {t:g} s (timeout)") from None
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise ServedError(f"{self.base_url + route}: unreadable answer ({type(e).__name__})") from None
        finally:
            resp.close()
        if not isinstance(data, dict):
            raise ServedError(f"{self.base_url + route}: answer is not a JSON object")
        return data

    def stream(self, route: str, body: dict) -> Iterator[dict]:
        """POST with stream=true and yield each SSE `data:` event as a dict, until [DONE].

        A stream that ends without [DONE], an event that is not JSON, or an `error` event raise
        ServedError. The first event may take `first_timeout` (the server reads the prompt first);
        after it, a gap longer than `timeout` is a stall.
        """
        url = self.base_url + route
        resp, sock = self._open("POST", route, body, self.timeout, self.first_timeout)
        events = 0
        try:
            data_lines: list[str] = []
            while True:
                try:
                    raw = resp.readline()
                except TimeoutError:
                    waited = self.timeout if events else self.first_timeout
                    raise ServedError(f"{url}: stream stalled, nothing for {waited:g} s after "
                                      f"{events} events (timeout)") from None
                except (OSError, http.client.HTTPException) as e:
                    raise ServedError(f"{url}: stream cut after {events} events ({type(e).__name__})") from None
                if not raw:
                    raise ServedError(f"{url}: stream cut after {events} events (connection closed before [DONE])")
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("data:"):
                    data_lines.append(line[5:].lstrip(" "))
                    continue
                if line or not data_lines:  # comments (":"), event:/id:/retry: fields, keep-alive blanks
                    continue
                payload = "\n".join(data_lines)
                data_lines = []
                if payload.strip() == "[DONE]":
                    return
                try:
                    event = json.loads(payload)
                except ValueError:
                    raise ServedError(f"{url}: malformed event after {events} events: {payload[:60]!r}") from None
                if not isinstance(event, dict):
                    raise ServedError(f"{url}: malformed event after {events} events: {payload[:60]!r}")
                if "error" in event:
                    err = event["error"]
                    msg = err.get("message", err) if isinstance(err, dict) else err
                    raise ServedError(f"{url}: server error mid-stream: {str(msg)[:120]}")
                events += 1
                if events == 1 and sock is not None:
                    sock.settimeout(self.timeout)
                yield event
        finally:
            resp.close()


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
