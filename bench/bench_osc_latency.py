#!/usr/bin/env python3
"""OSC latency: message sent → first presented frame that shows its effect, while a model generates.

    python bench/bench_osc_latency.py [--count 300] [--setlist setlists/incremental-temperature.toml]

Plays headless at 1920x1080 with OSC on a free port, sends caption toggles and temperature changes
(both change what the next frame shows) every 50 ms, and prints the engine's own measurement from
--stats-json: the time from the OSC thread receiving each datagram to the flip of the frame that
applied it (p50/p99), plus the frame figures.
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--setlist", default="setlists/incremental-temperature.toml")
    args = p.parse_args()
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
