#!/usr/bin/env python3
"""The confidence monitor's cost to the audience's stage: fps and frame_ms with and without it.

    python bench/bench_monitor.py [SETLIST] [--repeats 3] [--duration 20] [--x11]

Runs `run.py play SETLIST --window 1920x1080 --duration D --stats-json ...` alternately without and
with `--monitor 1`, R times each, and prints the medians of fps, frame_ms_p50, frame_ms_p99 and
dropped per run, and the ratios with/without. Default: SDL's dummy driver (--headless; the monitor
is a 1280x720 window there). --x11 starts `Xvfb :N -screen 0 3840x1080x24` and runs on it with the
monitor on the right half of the screen.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("fps", "frame_ms_p50", "frame_ms_p99", "dropped")


def one(setlist: str, duration: float, monitor: bool, env: dict, headless: bool, out: Path) -> dict:
    stats = out / f"stats-{int(monitor)}-{time.monotonic_ns()}.json"
    cmd = [sys.executable, "run.py", "play", setlist, "--window", "1920x1080", "--duration", str(duration),
           "--quiet", "--osc-port", "0", "--transcript-dir", str(out / "s"), "--stats-json", str(stats)]
    cmd += ["--headless"] if headless else []
    cmd += ["--monitor", "1"] if monitor else []
    subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   timeout=duration * 10 + 120)
    return json.loads(stats.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("setlist", nargs="?", default="setlists/elo2015.toml")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--x11", action="store_true", help="run on Xvfb (3840x1080) instead of the dummy driver")
    args = p.parse_args(argv)
    env = {**os.environ, "SDL_AUDIODRIVER": "dummy"}
    xvfb = None
    if args.x11:
        n = next(n for n in range(80, 99) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
        xvfb = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "3840x1080x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        env.update(DISPLAY=f":{n}", SDL_VIDEODRIVER="x11", SDL_VIDEO_WINDOW_POS="0,0")
    runs: dict[bool, list[dict]] = {False: [], True: []}
    try:
        with tempfile.TemporaryDirectory(prefix="lectern-bench-monitor-") as tmp:
            for _ in range(args.repeats):
                for monitor in (False, True):  # alternate, so load drifts hit both alike
                    runs[monitor].append(one(args.setlist, args.duration, monitor, env, not args.x11, Path(tmp)))
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in KEYS} for m, rs in runs.items()}
    result = {"setlist": args.setlist, "driver": "x11 (Xvfb 3840x1080)" if args.x11 else "dummy (--headless)",
              "repeats": args.repeats, "duration_s": args.duration,
              "without_monitor": med[False], "with_monitor": med[True],
              "monitor_redraws_median": statistics.median(r.get("monitor_redraws", 0) for r in runs[True]),
              "ratio_fps": round(med[True]["fps"] / med[False]["fps"], 3) if med[False]["fps"] else None,
              "ratio_frame_ms_p99": round(med[True]["frame_ms_p99"] / med[False]["frame_ms_p99"], 3)
              if med[False]["frame_ms_p99"] else None,
              "load_avg_1min": os.getloadavg()[0]}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
