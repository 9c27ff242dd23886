#!/usr/bin/env python3
"""OSC fuzz soak: many random and malformed datagrams at an OscServer, then ping and a valid command.

    python bench/bench_osc_fuzz.py [--count 100000] [--seed 1]

Prints how many datagrams were sent, how long the server took to get through them, its counters,
whether it still answers /lectern/ping and takes a valid /lectern/temperature afterwards, and how
many log lines the flood produced (they are rate-limited).
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import random
import socket
import struct
import sys
import time
from pathlib import Path

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from performance.controllers.osc import OscServer  # noqa: E402

ADDRESSES = [b"/lectern/temperature", b"/lectern/go", b"/lectern/scene", b"/lectern/subscribe", b"/lectern/volume",
             b"/lectern/connect", b"/x", b"#bundle", b"\xff\xfe/bad"]


def _pad(rng: random.Random, b: bytes) -> bytes:
    """OSC's 4-byte padding, wrong one time in five."""
    return b + b"\x00" * ((4 - len(b) % 4) if rng.random() < 0.8 else rng.randrange(0, 4))


def datagram(rng: random.Random) -> bytes:
    """One of: random bytes, an OSC-shaped packet with random tags and body, or a broken bundle."""
    kind = rng.random()
    if kind < 0.4:
        return rng.randbytes(rng.randrange(0, 300))
    if kind < 0.8:
        tags = bytes(rng.choice(b"ifsbhdTFNI[]z,") for _ in range(rng.randrange(0, 6)))
        return _pad(rng, rng.choice(ADDRESSES)) + _pad(rng, b"," + tags) + rng.randbytes(rng.randrange(0, 40))
    inner = rng.randbytes(rng.randrange(0, 40))
    size = rng.choice([len(inner), len(inner) + 4, -4, 0, 1 << 30])
    return b"#bundle\x00" + rng.randbytes(8) + struct.pack(">i", size) + inner


class _Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.n += 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    lines = _Count()
    logging.getLogger("lectern.osc").addHandler(lines)
    rng = random.Random(args.seed)
    inbox: queue.Queue = queue.Queue(maxsize=4096)
    srv = OscServer(inbox, host="127.0.0.1", port=0, rate_limit=1e9, tcp=False)
    srv.start()
    fuzz = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.monotonic()
    for i in range(args.count):
        fuzz.sendto(datagram(rng), ("127.0.0.1", srv.port))
        if i % 200 == 199:
            while inbox.qsize() > 1000:  # play the engine: take what was accepted
                inbox.get_nowait()
            time.sleep(0.002)  # the kernel's receive buffer is not under test
    while srv.stats()["received"] < args.count and time.monotonic() - t0 < 120:
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    while not inbox.empty():
        inbox.get_nowait()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(1.0)
    client.sendto(OscMessageBuilder("/lectern/ping").build().dgram, ("127.0.0.1", srv.port))
    answered = OscMessage(client.recvfrom(65536)[0]).address == "/lectern/pong"
    m = OscMessageBuilder("/lectern/temperature")
    m.add_arg(1.25)
    client.sendto(m.build().dgram, ("127.0.0.1", srv.port))
    cmd = inbox.get(timeout=1.0)
    srv.stop()
    st = srv.stats()
    print(json.dumps({"sent": args.count, "received": st["received"], "seconds": round(elapsed, 2),
                      "per_s": round(st["received"] / elapsed), "stats": st, "ping_answered": answered,
                      "valid_command_after": [cmd.address, list(cmd.args)], "log_lines": lines.n}, indent=1))
    return 0 if answered and cmd.args == (1.25,) else 1


if __name__ == "__main__":
    sys.exit(main())
