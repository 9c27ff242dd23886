#!/usr/bin/env python3
"""OSC abuse on loopback: what a hostile sender can do to a running stage (issue 20).

    python bench/bench_osc_abuse.py [--seconds 8] [--json]

Three phases, each against its own headless engine (1280x720, setlists/safe.toml, --stats-json):

baseline   no attack: the same engine, to compare with (this machine may be loaded by others).
flood      one sender sends 100 OSC bundles a second of 2,000 messages each, due 2-4 s ahead;
           once at the default --osc-rate and once at --osc-rate 1e6 (flood-unlimited: only the
           engine's bounds on waiting commands protect it).
guess      --osc-passcode set; 200 loopback addresses (127.0.1.x) send 2,000 wrong passcodes a
           second in all. Prints the wrong-passcode answers per second and per minute reached.
reflect    LECTERN_OSC_TRUST_LOOPBACK=0 (each sender treated as a remote, spoofable address); 300
           forged /lectern/subscribe naming a victim port, repeated. Prints bytes that reached the
           victim and the senders per byte sent.

For each phase: stage fps, longest frame gap and frames missed (from --stats-json, the whole run).
Targets (issue 20): fps >= 55 and no gap > 100 ms during any flood; amplification <= 1x for
unauthenticated senders; passcode guessing <= 10 attempts per minute in total.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

ROOT = Path(__file__).resolve().parents[1]
NTP_EPOCH = 2208988800
FLOOD_RATE = 100  # bundles per second (within the default --osc-rate of 200 datagrams a second)
GUESS_RATE = 2000  # guesses per second sent (spread over 200 addresses, 10/s each: within --osc-rate)


def msg(address: str, *args) -> bytes:
    b = OscMessageBuilder(address=address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sock(ip: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, 0))
    s.setblocking(False)
    return s


def drain(s: socket.socket) -> tuple[int, list[OscMessage]]:
    n, got = 0, []
    while True:
        try:
            data = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            return n, got
        n += len(data)
        try:
            got.append(OscMessage(data))
        except Exception:
            pass


class Engine:
    """A headless engine on a free port for one phase."""

    def __init__(self, tmp: Path, name: str, extra: list[str], env: dict | None = None, seconds: float = 8) -> None:
        self.port = free_port()
        self.stats = tmp / f"{name}.json"
        self.proc = subprocess.Popen(
            [sys.executable, "run.py", "play", "setlists/safe.toml", "--headless", "--window", "1280x720", "--quiet",
             "--osc-port", str(self.port), "--duration", str(seconds + 40), "--stats-json", str(self.stats),
             "--transcript-dir", str(tmp / name), *extra],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        s = sock()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            s.sendto(msg("/lectern/ping"), ("127.0.0.1", self.port))
            time.sleep(0.2)
            if any(m.address == "/lectern/pong" for m in drain(s)[1]):
                break
        else:
            raise SystemExit(f"{name}: the engine did not answer within 60 s")
        s.close()
        time.sleep(2.0)  # settle: models loaded, first poem on stage

    def finish(self) -> dict:
        self.proc.send_signal(2)  # SIGINT: the engine ends as after Ctrl+C and writes its stats
        self.proc.wait(60)
        data = json.loads(self.stats.read_text())
        return {k: data.get(k) for k in ("fps", "longest_gap_ms", "frames_missed", "dropped", "frames")}


def baseline(tmp: Path, seconds: float) -> dict:
    eng = Engine(tmp, "baseline", [], seconds=seconds)
    time.sleep(seconds + 4.5)
    return eng.finish()


def flood_unlimited(tmp: Path, seconds: float) -> dict:
    return flood(tmp, seconds, ["--osc-rate", "1000000"])


def flood(tmp: Path, seconds: float, extra: list[str] | None = None) -> dict:
    eng = Engine(tmp, "flood", extra or [], seconds=seconds)
    s = sock()
    to = ("127.0.0.1", eng.port)
    sent = msgs = 0
    t0 = time.monotonic()
    b = OscBundleBuilder(time.time())
    for _ in range(2000):
        b.add_content(_volume(0.5))
    template = bytearray(b.build().dgram)  # built once: only the timetag changes (the sender stays cheap)
    while time.monotonic() - t0 < seconds:
        due = time.time() + 2 + (sent % 3) + NTP_EPOCH
        template[8:16] = struct.pack(">II", int(due), int((due % 1) * 2**32))
        time.sleep(max(0.0, t0 + sent / FLOOD_RATE - time.monotonic()))
        try:
            s.sendto(bytes(template), to)
        except OSError:
            pass
        sent += 1
        msgs += 2000
        drain(s)
    time.sleep(4.5)  # everything that was accepted falls due
    out = eng.finish()
    out.update(bundles_sent=sent, messages_sent=msgs)
    return out


_VOL = None


def _volume(v: float):
    global _VOL
    if _VOL is None:
        b = OscMessageBuilder(address="/lectern/volume")
        b.add_arg(v)
        _VOL = b.build()
    return _VOL


def guess(tmp: Path, seconds: float) -> dict:
    eng = Engine(tmp, "guess", ["--osc-passcode", "correct-horse"], seconds=seconds)
    to = ("127.0.0.1", eng.port)
    socks = [sock(f"127.0.1.{i + 1}") for i in range(200)]
    wrong = sent = 0
    t0 = time.monotonic()
    k = 0
    while time.monotonic() - t0 < seconds:
        s = socks[k % len(socks)]
        s.sendto(msg("/lectern/connect", f"guess{k}"), to)
        sent += 1
        k += 1
        if k % 200 == 0:
            time.sleep(max(0.0, t0 + k / GUESS_RATE - time.monotonic()))
            for x in socks:
                for m in drain(x)[1]:
                    if m.address == "/lectern/reply" and list(m.params)[2:3] == ["wrong passcode"]:
                        wrong += 1
    elapsed = time.monotonic() - t0
    time.sleep(0.3)
    for x in socks:
        for m in drain(x)[1]:
            if m.address == "/lectern/reply" and list(m.params)[2:3] == ["wrong passcode"]:
                wrong += 1
    out = eng.finish()
    # the first 10 are the bucket's burst; after that the refill rate is what a guesser gets
    out.update(guesses_sent=sent, sent_per_s=round(sent / elapsed), guesses_checked=wrong,
               seconds=round(elapsed, 1), steady_checked_per_minute=round(max(0, wrong - 10) / elapsed * 60, 1))
    return out


def reflect(tmp: Path, seconds: float) -> dict:
    eng = Engine(tmp, "reflect", [], env={"LECTERN_OSC_TRUST_LOOPBACK": "0"}, seconds=seconds)
    to = ("127.0.0.1", eng.port)
    victim = sock()
    vport = victim.getsockname()[1]
    senders = [sock() for _ in range(300)]
    bytes_in = bytes_out = 0
    request = msg("/lectern/subscribe", vport)
    t0 = time.monotonic()
    rounds = 0
    while time.monotonic() - t0 < seconds:
        for s in senders:
            s.sendto(request, to)
            bytes_in += len(request)
        rounds += 1
        time.sleep(0.5)  # 600 forged subscribes a second, within the rate limit of each address
        bytes_out += drain(victim)[0] + sum(drain(s)[0] for s in senders)
    time.sleep(1.0)
    bytes_out += drain(victim)[0] + sum(drain(s)[0] for s in senders)
    out = eng.finish()
    out.update(bytes_in=bytes_in, bytes_out=bytes_out, amplification=round(bytes_out / max(1, bytes_in), 3))
    return out


PHASES = ("baseline", "flood", "flood-unlimited", "guess", "reflect")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each attack (default 8)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--only", choices=PHASES, help="run one phase")
    args = ap.parse_args()
    res = {}
    with tempfile.TemporaryDirectory() as d:
        for name, fn in (("baseline", baseline), ("flood", flood), ("flood-unlimited", flood_unlimited),
                         ("guess", guess), ("reflect", reflect)):
            if args.only and name != args.only:
                continue
            res[name] = fn(Path(d), args.seconds)
            if not args.json:
                print(name, json.dumps(res[name]), flush=True)
    if args.json:
        print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
