#!/usr/bin/env python3
"""OSC latency: message sent → first presented frame that shows its effect, while a model generates.

    python bench/bench_osc_latency.py [--count 300] [--setlist setlists/incremental-temperature.toml]
    python bench/bench_osc_latency.py --server-only [--count 2000] [--gil-load]

Plays headless at 1920x1080 with OSC on a free port, sends caption toggles and temperature changes
(both change what the next frame shows) every 50 ms, and prints the engine's own measurement from
--stats-json: the time from the OSC thread receiving each datagram to the flip of the frame that
applied it (p50/p99), plus the frame figures.

--server-only measures the OSC layer alone, in this process: datagram sent → Command on the inbox
(taken by a thread blocked on the queue, i.e. the moment it was put there), and datagram sent →
taken by a 60 fps loop that polls the inbox once a frame (what the engine sees before drawing).
--gil-load adds a thread that keeps the interpreter busy (as pure-Python work on the main thread would).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pythonosc.osc_message_builder import OscMessageBuilder

ROOT = Path(__file__).resolve().parents[1]


def percentiles(ms: list[float]) -> dict:
    """p50/p99/max of a list of milliseconds."""
    ms = sorted(ms)
    pick = lambda q: round(ms[min(len(ms) - 1, int(q * (len(ms) - 1) + 0.5))], 3)  # noqa: E731
    return {"n": len(ms), "p50": pick(0.5), "p99": pick(0.99), "max": round(ms[-1], 3)}


def _measure(mode: str, count: int, stop) -> dict:
    """One run: `count` /lectern/seed messages, each carrying its index, timed to the inbox."""
    import queue
    import threading

    from performance.controllers.osc import OscServer

    inbox: queue.Queue = queue.Queue(maxsize=4096)
    srv = OscServer(inbox, host="127.0.0.1", port=0, rate_limit=1e6, tcp=False)
    srv.start()
    sent_at: dict[int, float] = {}
    lat: list[float] = []
    rx: list[float] = []

    def take(cmd, now: float) -> None:
        i = cmd.args[0]
        lat.append((now - sent_at[i]) * 1000)
        rx.append((cmd.received - sent_at[i]) * 1000)

    def consumer() -> None:
        next_frame = time.monotonic()
        while not stop.is_set() and len(lat) < count:
            if mode == "blocked":
                try:
                    cmd = inbox.get(timeout=0.1)
                except queue.Empty:
                    continue
                take(cmd, time.monotonic())
            else:  # the frame loop: take everything waiting, once per 1/60 s
                next_frame += 1 / 60
                time.sleep(max(0.0, next_frame - time.monotonic()))
                now = time.monotonic()
                while True:
                    try:
                        take(inbox.get_nowait(), now)
                    except queue.Empty:
                        break

    th = threading.Thread(target=consumer)
    th.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        m = OscMessageBuilder("/lectern/seed")
        m.add_arg(i)
        data = m.build().dgram
        sent_at[i] = time.monotonic()
        sock.sendto(data, ("127.0.0.1", srv.port))
        time.sleep(0.002 + (i % 7) * 0.001)  # off the frame grid, a few hundred messages a second
    th.join(5)
    srv.stop()
    sock.close()
    return {"send_to_inbox_ms": percentiles(lat), "send_to_receive_thread_ms": percentiles(rx),
            "stats": {k: v for k, v in srv.stats().items() if v}}


def server_only(count: int, gil_load: bool) -> dict:
    """Send → inbox latency of OscServer alone (no engine): blocked consumer and 60 fps poller."""
    import threading

    sys.path.insert(0, str(ROOT))
    stop = threading.Event()
    if gil_load:
        def burn() -> None:
            x = 0
            while not stop.is_set():
                x = (x * 31 + 7) % 1000003
        threading.Thread(target=burn, daemon=True).start()
    out = {"gil_load": gil_load, **{mode: _measure(mode, count, stop) for mode in ("blocked", "frame_poll_60fps")}}
    stop.set()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--setlist", default="setlists/incremental-temperature.toml")
    p.add_argument("--server-only", action="store_true", help="the OSC layer alone: datagram → inbox")
    p.add_argument("--gil-load", action="store_true", help="with --server-only: keep the interpreter busy")
    args = p.parse_args()
    if args.server_only:
        print(json.dumps(server_only(args.count, args.gil_load), indent=1))
        return 0
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    tmp = Path(tempfile.mkdtemp(prefix="lectern-osc-bench-"))
    duration = 8 + args.count * 0.05
    proc = subprocess.Popen([sys.executable, "run.py", "play", args.setlist, "--headless", "--quiet", "--osc-port",
                             str(port), "--duration", str(duration), "--transcript-dir", str(tmp),
                             "--stats-json", str(tmp / "s.json")], cwd=ROOT)
    time.sleep(6)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(args.count):
        if i % 2:
            m = OscMessageBuilder("/lectern/caption")
            m.add_arg(i % 4 == 1)
        else:
            m = OscMessageBuilder("/lectern/temperature")
            m.add_arg(0.5 + (i % 10) / 10)
        sock.sendto(m.build().dgram, ("127.0.0.1", port))
        time.sleep(0.05)
    proc.wait()
    stats = json.loads((tmp / "s.json").read_text())
    print(json.dumps({k: stats.get(k) for k in ("osc_commands", "osc_latency_ms_p50", "osc_latency_ms_p99", "fps",
                                                 "frame_ms_p99", "dropped", "frames")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
