#!/usr/bin/env python3
"""The phone remote attacked from many loopback addresses while a real headless show runs (issue 27).

    python bench/bench_remote_abuse.py [--seconds 60] [--addresses 100] [--slow 600] [--storm 40]

Starts `run.py play setlists/demo.toml --headless --remote PORT --osc-passcode CODE --stats-json F
--duration ...` and, for --seconds, all at once (every attacker binds its own 127.0.0.x address;
nothing leaves loopback; everything stops by itself):

guess     --addresses sources, each opening the remote's WebSocket (with the page's own Origin)
          and sending wrong passcodes as fast as answers come: counts the passcodes the show
          actually compared ("wrong passcode" answers), per minute;
storm     --storm sockets that open the WebSocket, never authenticate, and reconnect at once
          when closed;
slow      --slow slowloris sockets: a request line, then one header line every 2 s;
flood     one socket sending junk frames (deep JSON, 400-digit numbers, huge strings) as fast as
          it can, and a fresh connection a moment;
legit     every second, from 127.0.0.1, the operator's phone opens the remote with the URL the
          show printed (token; on a remote without tokens, the passcode): time until its first
          state message.

Prints one JSON object: guesses checked per minute, legit tries / successes / worst and median
latency, the show's file descriptors and RSS before, at peak and after, stage fps and longest
frame gap (the whole run, from --stats-json), and the remote's own log lines about guesses.
Goals: <= 10 guesses/min; the legit client in every time within 1 s; bounded fds; >= 55 fps.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSCODE = "lantern-7"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def proc_stats(pid: int) -> tuple[int, float]:
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        rss = 0.0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
        return fds, round(rss, 1)
    except OSError:
        return -1, -1.0


class Bench:
    def __init__(self, a: argparse.Namespace, port: int, token: str | None, pid: int) -> None:
        self.a = a
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.token = token
        self.pid = pid
        self.stop_at = 0.0
        self.checked = 0
        self.busy = 0
        self.other_auth = 0
        self.refused_ws = 0
        self.legit: list[float | None] = []
        self.peak_fds = 0
        self.peak_rss = 0.0
        self.junk_replies = 0

    def live(self) -> bool:
        return time.monotonic() < self.stop_at

    async def session(self, ip: str):
        import aiohttp

        conn = aiohttp.TCPConnector(local_addr=(ip, 0), force_close=True, limit=0)
        return aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=10))

    async def guesser(self, ip: str) -> None:
        import aiohttp

        async with await self.session(ip) as s:
            while self.live():
                try:
                    async with s.ws_connect(self.base + "/ws", headers={"Origin": self.base}, heartbeat=None,
                                            timeout=aiohttp.ClientWSTimeout(ws_receive=5)) as ws:
                        while self.live():
                            await ws.send_str(json.dumps({"type": "connect",
                                                          "passcode": f"g{random.randrange(10**9)}"}))
                            while True:
                                m = await ws.receive(timeout=5)
                                if m.type != aiohttp.WSMsgType.TEXT:
                                    raise ConnectionError
                                d = json.loads(m.data)
                                if d.get("type") == "auth":
                                    break
                            det = d.get("detail", "")
                            if det == "wrong passcode":
                                self.checked += 1
                            elif "too many" in det:
                                self.busy += 1
                                if "try again in" in det and "guesses on this show" not in det:  # old lockout
                                    break
                            else:
                                self.other_auth += 1
                except (TimeoutError, aiohttp.ClientError, ConnectionError, OSError, ValueError):
                    self.refused_ws += 1
                    await asyncio.sleep(0.05)

    async def stormer(self, ip: str) -> None:
        import aiohttp

        async with await self.session(ip) as s:
            while self.live():
                try:
                    async with s.ws_connect(self.base + "/ws", headers={"Origin": self.base}, heartbeat=None) as ws:
                        async for _ in ws:
                            if not self.live():
                                break
                except (TimeoutError, aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.05)

    async def slow(self, ip: str) -> None:
        while self.live():
            try:
                r, w = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(ip, 0))
            except OSError:
                await asyncio.sleep(0.5)
                continue
            try:
                w.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                while self.live():
                    await asyncio.sleep(2.0)
                    w.write(b"X-a: b\r\n")
                    await w.drain()
                    if r.at_eof():
                        break
            except (OSError, ConnectionError):
                pass
            finally:
                w.close()
            await asyncio.sleep(0.2)

    async def flood(self) -> None:
        import aiohttp

        junk = ["[" * 2000 + "]" * 2000, json.dumps({"type": "command", "address": "/lectern/seed",
                                                     "args": [int("9" * 400)]}),
                json.dumps({"type": "command", "address": "x" * 3000}), '{"type": 1e999}', "nope",
                json.dumps({"type": "connect", "passcode": ["x"] * 10})]
        async with await self.session("127.0.0.250") as s:
            while self.live():
                try:
                    async with s.ws_connect(self.base + "/ws", headers={"Origin": self.base}) as ws:
                        for i in range(100000):
                            if not self.live():
                                break
                            await ws.send_str(junk[i % len(junk)])
                            m = await ws.receive(timeout=5)
                            if m.type != aiohttp.WSMsgType.TEXT:
                                break
                            self.junk_replies += 1
                except (TimeoutError, aiohttp.ClientError, OSError):
                    await asyncio.sleep(0.05)

    async def phone(self) -> None:
        import aiohttp

        while self.live():
            t0 = time.monotonic()
            got = None
            url = self.base + "/ws" + (f"?token={self.token}" if self.token else "")
            try:
                async with await self.session("127.0.0.1") as s, s.ws_connect(
                        url, headers={"Origin": self.base}, timeout=aiohttp.ClientWSTimeout(ws_receive=3)) as ws:
                    if not self.token:
                        await ws.send_str(json.dumps({"type": "connect", "passcode": PASSCODE}))
                    while time.monotonic() - t0 < 3:
                        m = await ws.receive(timeout=3)
                        if m.type != aiohttp.WSMsgType.TEXT:
                            break
                        if json.loads(m.data).get("type") == "state":
                            got = time.monotonic() - t0
                            break
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
                pass
            self.legit.append(got)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))

    async def sample(self) -> None:
        while self.live():
            fds, rss = proc_stats(self.pid)
            self.peak_fds = max(self.peak_fds, fds)
            self.peak_rss = max(self.peak_rss, rss)
            await asyncio.sleep(0.5)

    async def run(self) -> None:
        self.stop_at = time.monotonic() + self.a.seconds
        ips = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(self.a.addresses + self.a.storm + 50)]
        tasks = [self.guesser(ip) for ip in ips[:self.a.addresses]]
        tasks += [self.stormer(ip) for ip in ips[self.a.addresses:self.a.addresses + self.a.storm]]
        slow_ips = ips[-50:]
        tasks += [self.slow(slow_ips[i % 50]) for i in range(self.a.slow)]
        tasks += [self.flood(), self.phone(), self.sample()]
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), self.a.seconds + 30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--addresses", type=int, default=100)
    p.add_argument("--storm", type=int, default=40)
    p.add_argument("--slow", type=int, default=600)
    p.add_argument("--setlist", default="setlists/demo.toml")
    p.add_argument("--root", type=Path, default=ROOT, help="the Lectern checkout to run (to compare versions)")
    a = p.parse_args()
    if not 0 < a.seconds <= 600 or not 0 <= a.addresses <= 500 or not 0 <= a.slow <= 5000 or not 0 <= a.storm <= 500:
        p.error("bounded: --seconds 0..600, --addresses 0..500, --storm 0..500, --slow 0..5000")
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, a.slow + a.addresses + a.storm + 500)), hard))
    tmp = Path(tempfile.mkdtemp(prefix="lectern-remote-abuse-"))
    port = free_port()
    stats = tmp / "stats.json"
    err = tmp / "stderr.log"
    cmd = [sys.executable, "run.py", "play", a.setlist, "--headless", "--window", "1280x720", "--quiet",
           "--osc-port", "0", "--osc-passcode", PASSCODE, "--remote", str(port), "--stats-json", str(stats),
           "--duration", str(a.seconds + 90), "--transcript-dir", str(tmp)]
    proc = subprocess.Popen(cmd, cwd=a.root, stdout=subprocess.DEVNULL, stderr=open(err, "w"))
    token = None
    try:
        t0 = time.monotonic()
        while True:
            text = err.read_text(errors="replace")
            m = re.search(r"remote: (?:open )?(http://\S+)", text)
            if m:
                token_m = re.search(r"#token=([A-Za-z0-9_-]+)", m.group(1))
                token = token_m.group(1) if token_m else None
                break
            if proc.poll() is not None or time.monotonic() - t0 > 60:
                print(json.dumps({"error": "the show did not start", "stderr": text[-1500:]}))
                return 1
            time.sleep(0.1)
        time.sleep(3.0)  # the stage settles
        before = proc_stats(proc.pid)
        b = Bench(a, port, token, proc.pid)
        asyncio.run(b.run())
        time.sleep(6.0)  # deadlines run out
        after = proc_stats(proc.pid)
        proc.wait(a.seconds + 120)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(20)
    log = err.read_text(errors="replace")
    frame = json.loads(stats.read_text()) if stats.exists() else {}
    ok = [x for x in b.legit if x is not None]
    ok.sort()
    out = {
        "seconds": a.seconds, "addresses": a.addresses, "storm": a.storm, "slow": a.slow,
        "token_in_url": token is not None,
        "guesses_checked": b.checked, "guesses_checked_per_min": round(b.checked * 60 / a.seconds, 1),
        "guesses_refused_unchecked": b.busy, "guess_sockets_failed": b.refused_ws,
        "legit_tries": len(b.legit), "legit_in": len(ok),
        "legit_ms_median": round(ok[len(ok) // 2] * 1000, 1) if ok else None,
        "legit_ms_worst": round(ok[-1] * 1000, 1) if ok else None,
        "legit_in_within_1s_every_time": bool(b.legit) and len(ok) == len(b.legit) and ok[-1] <= 1.0,
        "junk_replies": b.junk_replies,
        "fds_before": before[0], "fds_peak": b.peak_fds, "fds_after": after[0],
        "rss_mb_before": before[1], "rss_mb_peak": b.peak_rss, "rss_mb_after": after[1],
        "stage_fps": frame.get("fps"), "longest_frame_gap_ms": frame.get("longest_gap_ms"),
        "frames_missed": frame.get("frames_missed"),
        "worst_frame_gaps": frame.get("worst_gaps"),  # when the show's worst gaps fell (s into the run)
        "gc_longest_ms": frame.get("gc_longest_ms"), "gc_over_10ms": frame.get("gc_over_10ms"),
        "guess_log_lines": sum(1 for line in log.splitlines() if "passcode" in line),
        "tracebacks": log.count("Traceback"),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
