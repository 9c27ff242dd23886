#!/usr/bin/env python3
"""Edits while the show runs: how soon a saved file reaches the engine, and what it costs it.

    python bench/bench_reload.py [--count 20] [--setlist setlists/demo.toml] [--frames N]

Prints one JSON object:
- notice_ms: a scene file saved (written whole, as an editor's rename would leave it) → its
  checked Reload message on the inbox, through the real watcher thread (watchfiles, inotify, the
  400 ms debounce included): median and max of --count edits;
- read_ms: `show.reload.read_again` of --setlist (every scene file read, parsed, checked, hashed:
  the work done on the watcher's thread, never on the frame loop), median of --count;
- step_us: the engine's `step` on the frame thread that takes a checked version at a boundary,
  against a step without one in the same run (ratio = with / without), medians of --count;
- frames (with --frames N): a headless show whose scene is saved every 2 s, with the watcher and
  under --no-watch, alternating: fps, frame_ms p50/p99 and dropped frames, medians of N runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCENE = """model = "markov"
length = {{ words = {n} }}
pacing = {{ reveal = "words", rate = 10, hold = 0.5 }}
"""


def notice(count: int) -> list[float]:
    from performance.controllers.inbox import Inbox
    from performance.controllers.watch import Watch
    from performance.show.config import load_setlist

    tmp = Path(tempfile.mkdtemp(prefix="lectern-bench-reload-"))
    (tmp / "a.toml").write_text(SCENE.format(n=10))
    (tmp / "set.toml").write_text('[[scene]]\nfile = "a.toml"\n')
    inbox = Inbox()
    w = Watch(load_setlist(tmp / "set.toml"))
    w.start(inbox)
    w.ready.wait(10)
    out = []
    for i in range(count):
        new = tmp / ".a.toml.new"
        new.write_text(SCENE.format(n=11 + i))
        t0 = time.perf_counter()
        new.replace(tmp / "a.toml")
        msg = inbox.get(timeout=10)
        out.append((time.perf_counter() - t0) * 1000)
        assert msg.setlist.entries[0].scene.length.lo == 11 + i, msg.error
    w.stop()
    return out


def read(setlist: Path, count: int) -> list[float]:
    """As the watcher calls it: the running version's files and models known."""
    from performance.show.config import load_setlist
    from performance.show.reload import read_again, setlist_files, setlist_models

    running = load_setlist(setlist)
    files, models = setlist_files(running), setlist_models(running)
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        msg = read_again(setlist, known=files, models=models)
        out.append((time.perf_counter() - t0) * 1000)
        assert msg.error == "", msg.error
    return out


def step(count: int) -> tuple[list[float], list[float]]:
    """A step at a poem's end with and without a reload taken there (fresh engines, the same poem)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import script_loader

    from performance.engine import Engine
    from performance.show.reload import read_again
    from performance.worker.core import WorkerCore

    tmp = Path(tempfile.mkdtemp(prefix="lectern-bench-step-"))
    (tmp / "a.toml").write_text(SCENE.format(n=10))
    (tmp / "set.toml").write_text('[[scene]]\nfile = "a.toml"\n')
    from performance.show.config import load_setlist

    sl = load_setlist(tmp / "set.toml")
    (tmp / "a.toml").write_text(SCENE.format(n=4))
    msg = read_again(tmp / "set.toml")
    with_, without = [], []
    for _ in range(count):
        for bucket, first in ((without, []), (with_, [msg])):
            out: list = []
            core = WorkerCore(out.append, script_loader)
            eng = Engine(sl, session_seed=1)
            for m in eng.start(0.0).worker:
                core.handle(m)
            now, inbox, took = 0.0, list(first), None
            while took is None and now < 5:
                core.pump()
                inbox += out
                out.clear()
                t0 = time.perf_counter()
                o = eng.step(now, inbox)
                dt = (time.perf_counter() - t0) * 1e6
                if any(e["event"] == "poem_end" for e in o.events):  # the step at the first poem's end
                    took = dt
                    assert bool(first) == any(e["event"] == "reload_applied" for e in o.events)
                for m in o.worker:
                    core.handle(m)
                inbox, now = [], now + 1 / 60
            bucket.append(took)
    return with_, without


def frames(repeats: int, seconds: float = 20.0) -> dict:
    """A headless show (1280x720) with the scene saved every 2 s (each save a new version, taken at
    the next poem) against the same show and saves under --no-watch, runs alternating: the frame
    loop's p99 work time and dropped frames, medians over the runs."""
    import subprocess

    runs: dict[str, list[dict]] = {"watch": [], "no_watch": []}
    for _ in range(repeats):
        for mode in ("watch", "no_watch"):
            tmp = Path(tempfile.mkdtemp(prefix="lectern-bench-frames-"))
            (tmp / "a.toml").write_text(SCENE.format(n=10))
            (tmp / "set.toml").write_text('[[scene]]\nfile = "a.toml"\n')
            cmd = [sys.executable, "run.py", "play", str(tmp / "set.toml"), "--headless", "--window", "1280x720",
                   "--quiet", "--osc-port", "0", "--duration", str(seconds), "--transcript-dir", str(tmp / "s"),
                   "--stats-json", str(tmp / "stats.json")] + (["--no-watch"] if mode == "no_watch" else [])
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            i = 0
            while proc.poll() is None:
                time.sleep(2.0)
                i += 1
                (tmp / "a.toml").write_text(SCENE.format(n=4 + i % 8))
            stats = json.loads((tmp / "stats.json").read_text())
            runs[mode].append(stats)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("fps", "frame_ms_p50", "frame_ms_p99", "dropped")}
           for m, rs in runs.items()}
    med["p99_ratio"] = round(med["watch"]["frame_ms_p99"] / med["no_watch"]["frame_ms_p99"], 2)
    med["repeats"] = repeats
    return med


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--setlist", type=Path, default=ROOT / "setlists/demo.toml")
    ap.add_argument("--frames", type=int, default=0, metavar="N",
                    help="also N alternating headless runs with and without the watcher (20 s each)")
    a = ap.parse_args()
    n = notice(a.count)
    r = read(a.setlist, a.count)
    w, wo = step(a.count)
    extra = {"frames": frames(a.frames)} if a.frames else {}
    print(json.dumps({
        **extra,
        "notice_ms": {"median": round(statistics.median(n), 1), "max": round(max(n), 1), "count": len(n)},
        "read_ms": {"setlist": str(a.setlist), "median": round(statistics.median(r), 2)},
        "step_us": {"with_reload": round(statistics.median(w), 1), "without": round(statistics.median(wo), 1),
                    "ratio": round(statistics.median(w) / statistics.median(wo), 2)},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
