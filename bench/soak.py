#!/usr/bin/env python3
"""Soak: a looping setlist for many simulated hours, watching memory, threads and open files.

    python bench/soak.py [SETLIST] [--hours 24] [--time-scale 100]

Runs `run.py play SETLIST --headless --install --supervised --time-scale X --duration H*3600` and
samples /proc/<pid> (resident memory, threads, file descriptors) every few seconds. Prints RSS after
warm-up and at the end (growth %), threads and fds at start and end, poems per simulated hour in
the first and last quarter (the rate must not decay), and how often it crossed opening/closing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sample(pid: int) -> dict | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1]) / 1024
        threads = int(next(ln for ln in status.splitlines() if ln.startswith("Threads")).split()[1])
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        return {"rss_mb": rss, "threads": threads, "fds": fds}
    except (OSError, StopIteration):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("setlist", nargs="?", default="setlists/soak.toml")
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    p.add_argument("--time-scale", type=float, default=100.0, help="engine seconds per real second (default 100)")
    p.add_argument("--warmup", type=float, default=0.25,
                   help="fraction of the run counted as warm-up, while caches (fonts, rendered lines) fill (default 0.25)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = p.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="lectern-soak-"))
    duration = args.hours * 3600
    cmd = [sys.executable, "run.py", "play", args.setlist, "--headless", "--window", "640x360", "--install",
           "--supervised", "--quiet", "--osc-port", "0", "--time-scale", str(args.time_scale), "--duration",
           str(duration), "--transcript-dir", str(out / "sessions"), "--stats-json", str(out / "stats.json")]
    env = {**os.environ, "LECTERN_STATE_DIR": str(out)}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(out / "stderr.log", "w"))
    real = duration / args.time_scale
    samples = []
    while proc.poll() is None:
        s = sample(proc.pid)
        if s:
            samples.append({"t": time.monotonic() - t0, **s})
        time.sleep(max(1.0, real / 300))
    wall = time.monotonic() - t0
    warm = [s for s in samples if s["t"] >= args.warmup * real] or samples
    first, last = warm[0], (samples[-3] if len(samples) > 3 else samples[-1])
    events = []
    for f in (out / "sessions").glob("*.jsonl"):
        for line in f.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    ends = [e["t"] for e in events if e["event"] == "poem_end" and not e.get("partial")]
    schedule = [e for e in events if e["event"] == "command" and e["source"] == "schedule"]
    # open intervals on the engine clock, from the schedule's blackout/resume commands
    start = min((e["t"] for e in events), default=0.0)
    opened, t_open = [], start
    for e in schedule:
        if e["address"].endswith("blackout") and t_open is not None:
            opened.append((t_open, e["t"]))
            t_open = None
        elif e["address"].endswith("resume") and t_open is None:
            t_open = e["t"]
    if t_open is not None:
        opened.append((t_open, duration))
    half = (start + duration) / 2

    def rate(lo: float, hi: float) -> float:
        secs = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in opened)
        return sum(1 for t in ends if lo <= t < hi) / max(1e-9, secs / 3600)

    rate_first, rate_last = rate(start, half), rate(half, duration)
    figures = {
        "setlist": args.setlist, "simulated_hours": args.hours, "time_scale": args.time_scale,
        "wall_minutes": round(wall / 60, 1), "exit": proc.returncode,
        "rss_mb_after_warmup": round(first["rss_mb"], 1), "rss_mb_end": round(last["rss_mb"], 1),
        "rss_growth_pct": round(100 * (last["rss_mb"] - first["rss_mb"]) / first["rss_mb"], 2),
        "rss_mb_max": round(max(s["rss_mb"] for s in samples), 1),
        "threads_start": first["threads"], "threads_end": last["threads"],
        "fds_start": first["fds"], "fds_end": last["fds"],
        "poems": len(ends), "poems_per_open_sim_hour_first_half": round(rate_first, 1),
        "poems_per_open_sim_hour_second_half": round(rate_last, 1),
        "open_sim_hours": round(sum(b - a for a, b in opened) / 3600, 2),
        "open_close_changes": len(schedule),
        "stats": json.loads((out / "stats.json").read_text()) if (out / "stats.json").exists() else None,
        "rss_mb_by_tenth": [round(warm[min(len(warm) - 1, int(i * len(warm) / 10))]["rss_mb"], 1) for i in range(10)],
        "output": str(out),
    }
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    ok = (figures["exit"] == 0 and figures["rss_growth_pct"] < 5 and figures["threads_end"] <= figures["threads_start"]
          and figures["fds_end"] <= figures["fds_start"] and rate_last >= 0.8 * rate_first > 0)
    print("soak:", "PASS" if ok else "FAIL", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
