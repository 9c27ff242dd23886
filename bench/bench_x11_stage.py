"""The stage on a real X server, as an audience sees it: for each setlist, play it under Xvfb through
SDL's x11 driver (windowed or fullscreen, with or without openbox), take screenshots from the X server
once a second, and print fps, dropped frames, longest frame gap, the time from process start to the
first text visible in the X server's picture, how many screenshots show text, and whether the window
kept one X id.

    .venv/bin/python bench/bench_x11_stage.py                       # every shipped setlist, windowed
    .venv/bin/python bench/bench_x11_stage.py demo --fullscreen --wm --seconds 20
    .venv/bin/python bench/bench_x11_stage.py --cold-start --repeats 5   # `python run.py` to first text

Targets (issue 11, idle 2-core machine): >= 55 fps, screenshots show text, no "display changed",
first text <= 3 s after `python run.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from xserver import XServer, lit_pixels  # noqa: E402


def run_one(x: XServer, setlist: str, seconds: float, fullscreen: bool, shots_dir: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "run.py", "play", f"setlists/{setlist}.toml", "--duration", str(seconds), "--quiet",
               "--osc-port", "0", "--transcript-dir", d, "--stats-json", f"{d}/stats.json"]
        if not fullscreen:
            cmd += ["--window", "1280x720"]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=x.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first_text = None
        ids: set[int] = set()
        shots = lit = 0
        next_shot = 0.0
        while proc.poll() is None:
            wins = x.windows()
            ids.update(w["id"] for w in wins)
            if wins:
                w = wins[0]
                img = x.screenshot()
                has_text = lit_pixels(img, (w["x"], w["y"], w["w"], w["h"])) > 200
                now = time.monotonic() - t0
                if has_text and first_text is None:
                    first_text = now
                if first_text is not None and now >= next_shot:
                    shots += 1
                    lit += has_text
                    next_shot = now + 1.0
                    if shots_dir is not None and shots == 5:
                        x.screenshot(shots_dir / f"{setlist}{'-fs' if fullscreen else ''}.png")
            time.sleep(0.2 if first_text is None else 0.5)  # a screenshot costs the X server a frame: not too often
        err = proc.stderr.read()
        stats = json.loads(Path(d, "stats.json").read_text())
    return {"setlist": setlist, "fullscreen": fullscreen, "fps": stats["fps"], "dropped": stats["dropped"],
            "frames": stats["frames"], "longest_gap_ms": stats.get("longest_gap_ms"),
            "first_text_s": round(first_text, 2) if first_text is not None else None,
            "shots_with_text": f"{lit}/{shots}", "window_ids": len(ids),
            "display_changed": err.count("display changed")}


def cold_start(x: XServer) -> float | None:
    """`python run.py` (the demo, fullscreen) until text shows in the X server's picture."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "run.py"], cwd=ROOT, env=x.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - t0 < 30:
            if lit_pixels(x.screenshot()) > 200:
                return round(time.monotonic() - t0, 2)
            time.sleep(0.2)
        return None
    finally:
        proc.terminate()
        proc.wait(20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("setlists", nargs="*", help="names under setlists/ (default: every shipped one)")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--fullscreen", action="store_true")
    ap.add_argument("--wm", action="store_true", help="run openbox on the X server")
    ap.add_argument("--cold-start", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shots", type=Path, help="save one screenshot per setlist in this folder")
    a = ap.parse_args()
    names = a.setlists or sorted(p.stem for p in (ROOT / "setlists").glob("*.toml"))
    if a.shots:
        a.shots.mkdir(parents=True, exist_ok=True)
    with XServer(1920, 1080, window_manager=a.wm) as x:
        if a.cold_start:
            times = [cold_start(x) for _ in range(a.repeats)]
            ok = [t for t in times if t is not None]
            print(json.dumps({"cold_start_s": times, "median_s": statistics.median(ok) if ok else None,
                              "wm": a.wm}))
            return 0
        for name in names:
            print(json.dumps(run_one(x, name, a.seconds, a.fullscreen, a.shots) | {"wm": a.wm}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
