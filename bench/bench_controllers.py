#!/usr/bin/env python3
"""Controller latency: MIDI CC and remote (WebSocket) → first presented frame, against OSC in the same run.

    python bench/bench_controllers.py [--count 300] [--setlist setlists/incremental-temperature.toml]

Starts its own JACK server (jackd --no-realtime -d dummy) and a fake MIDI controller (a JACK MIDI
client), plays headless at 1920x1080 with OSC, MIDI (--midi, a mapping with the temperature on
CC 20, takeover "jump") and the remote (--remote), then sends temperature changes every 50 ms,
rotating OSC → MIDI → remote so the three share the same load. The figures are the engine's own
measurement from --stats-json (the OSC bench's method): from the moment the controller's thread
received the message (OSC datagram read, rtmidi callback, WebSocket frame) to the flip of the
first frame that applied it. Prints p50/p99 per source and the difference to OSC's p99 for each
run, then the medians over --repeats runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPING = """name = "bench"
[[bind]]
cc = 20
command = "temperature"
takeover = "jump"
"""


def free_port(kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def drive(count: int, osc_port: int, remote_port: int, midi_out) -> None:
    import aiohttp
    from pythonosc.osc_message_builder import OscMessageBuilder

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    async with aiohttp.ClientSession() as session, session.ws_connect(f"http://127.0.0.1:{remote_port}/ws") as ws:
        async def drain() -> None:
            async for _ in ws:  # replies and state: read so the socket never backs up
                pass

        reader = asyncio.create_task(drain())
        for i in range(count):
            value = 0.5 + (i % 10) / 10
            src = i % 3
            if src == 0:
                m = OscMessageBuilder("/lectern/temperature")
                m.add_arg(value)
                sock.sendto(m.build().dgram, ("127.0.0.1", osc_port))
            elif src == 1:
                midi_out.send_message([0xB0, 20, round(value / 3 * 127)])
            else:
                await ws.send_json({"type": "command", "address": "/lectern/temperature", "args": [value], "id": i})
            await asyncio.sleep(0.05)
        reader.cancel()


def wait_ready(osc_port: int, remote_port: int, proc: subprocess.Popen) -> None:
    """Until the show answers /lectern/ping and the remote accepts connections."""
    from pythonosc.osc_message_builder import OscMessageBuilder

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.3)
    ping = OscMessageBuilder("/lectern/ping").build().dgram
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120:
        if proc.poll() is not None:
            raise SystemExit("the show ended before it was ready")
        sock.sendto(ping, ("127.0.0.1", osc_port))
        try:
            sock.recvfrom(65536)
        except TimeoutError:
            continue
        try:
            socket.create_connection(("127.0.0.1", remote_port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the show did not answer /lectern/ping within 120 s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=300)
    p.add_argument("--setlist", default="setlists/incremental-temperature.toml")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    runs = []
    for i in range(args.repeats):
        out = one_run(args)
        print(f"run {i + 1}: " + json.dumps(out), flush=True)
        runs.append(out)
    keys = [k for k in runs[0] if all(isinstance(r.get(k), int | float) for r in runs)]
    print(json.dumps({"runs": len(runs), "setlist": args.setlist,
                      "median": {k: statistics.median(r[k] for r in runs) for k in keys}}, indent=1))
    return 0


def one_run(args: argparse.Namespace) -> dict:
    """One show: jackd, a fake controller, the show, the sends; the stats figures."""
    import rtmidi

    if shutil.which("jackd") is None:
        raise SystemExit("jackd not installed (apt jackd2)")
    tmp = Path(tempfile.mkdtemp(prefix="lectern-ctl-bench-"))
    (tmp / "map.toml").write_text(MAPPING)
    server = f"lectern-bench-{os.getpid()}"
    env = {**os.environ, "JACK_DEFAULT_SERVER": server, "LECTERN_MIDI_API": "jack", "JACK_NO_START_SERVER": "1"}
    os.environ.update({k: env[k] for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")})
    jack = subprocess.Popen(["jackd", "--no-realtime", "-n", server, "-d", "dummy", "-r", "48000", "-p", "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc = None
    try:
        time.sleep(1.0)  # jackd's socket; asking earlier only prints JACK's complaints
        for _ in range(100):
            try:
                midi_out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="benchctl")
                break
            except Exception:
                time.sleep(0.2)
        else:
            raise SystemExit("jackd did not start")
        midi_out.open_virtual_port("bench fader")
        osc_port, remote_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
        proc = subprocess.Popen([sys.executable, "run.py", "play", args.setlist, "--headless", "--quiet",
                                 "--osc-port", str(osc_port), "--remote", str(remote_port), "--midi", "bench fader",
                                 "--midi-map", str(tmp / "map.toml"), "--duration", "100000",
                                 "--transcript-dir", str(tmp), "--stats-json", str(tmp / "s.json")], cwd=ROOT, env=env)
        wait_ready(osc_port, remote_port, proc)
        time.sleep(2)  # the first poem under way, as in a show
        asyncio.run(drive(args.count, osc_port, remote_port, midi_out))
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # the runtime ends the session and writes --stats-json
        proc.wait(60)
        stats = json.loads((tmp / "s.json").read_text())
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        jack.terminate()
        jack.wait(5)
    out = {k: stats.get(k) for k in ("osc_commands", "osc_latency_ms_p50", "osc_latency_ms_p99",
                                     "midi_commands", "midi_latency_ms_p50", "midi_latency_ms_p99",
                                     "remote_commands", "remote_latency_ms_p50", "remote_latency_ms_p99",
                                     "fps", "frame_ms_p99", "dropped", "frames")}
    for src in ("midi", "remote"):
        if out.get(f"{src}_latency_ms_p99") is not None and out.get("osc_latency_ms_p99") is not None:
            out[f"{src}_p99_minus_osc_p99_ms"] = round(out[f"{src}_latency_ms_p99"] - out["osc_latency_ms_p99"], 2)
    return out


if __name__ == "__main__":
    sys.exit(main())
