"""An OSC client for the tests: UDP from a fixed port, collecting what comes back (loopback only)."""

from __future__ import annotations

import socket
import time

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder


def msg(address: str, *args) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


class Client:
    """A UDP socket that sends from a fixed port and collects what comes back."""

    def __init__(self, server_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.server = ("127.0.0.1", server_port)

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def collect(self, seconds: float = 0.5, until=None) -> list[tuple[str, list]]:
        out, t0 = [], time.monotonic()
        while time.monotonic() - t0 < seconds:
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            m = OscMessage(data)
            out.append((m.address, list(m.params)))
            if until and until(out):
                break
        return out


def replies(got: list) -> list[list]:
    return [m[1] for m in got if m[0] == "/lectern/reply"]


def slip(packet: bytes) -> bytes:
    from performance.controllers.osc import slip_encode

    return slip_encode(packet)


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
