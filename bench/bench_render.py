#!/usr/bin/env python3
"""Recording benchmark: the live recorder's dropped frames at 1080p30 during a headless play, and the
offline render's speed as a multiple of real time at 1080p30 and 1080p60.

    python bench/bench_render.py [--seconds 30] [--setlist setlists/demo.toml]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--setlist", default="setlists/demo.toml")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lectern-bench-render-"))
    play = [sys.executable, "run.py", "play", args.setlist, "--headless", "--duration", str(args.seconds), "--quiet",
            "--osc-port", "0", "--record", str(tmp / "live.mp4"), "--transcript-dir", str(tmp / "s"),
            "--stats-json", str(tmp / "stats.json")]
    subprocess.run(play, cwd=ROOT, check=True)
    stats = json.loads((tmp / "stats.json").read_text())
    jsonl = next((tmp / "s").glob("*.jsonl"))
    out = {"live_1080p30": {"frames": stats["recorder_frames"], "dropped": stats["recorder_dropped"],
                            "dropped_pct": round(100 * stats["recorder_dropped"] / max(1, stats["recorder_frames"]), 2),
                            "stage_fps": stats["fps"], "frame_ms_p99": stats["frame_ms_p99"]}}
    for fps in (30, 60):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "run.py", "render", str(jsonl), "--out", str(tmp / f"r{fps}.mp4"), "--fps",
                        str(fps), "--size", "1920x1080"], cwd=ROOT, check=True, capture_output=True)
        wall = time.monotonic() - t0
        out[f"render_1080p{fps}"] = {"session_s": args.seconds, "wall_s": round(wall, 2),
                                     "x_real_time": round(args.seconds / wall, 2)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
