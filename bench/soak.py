#!/usr/bin/env python3
"""Soak: a looping setlist for many simulated hours, watching memory, threads and open files.

    python bench/soak.py [SETLIST] [--hours 24] [--time-scale 100] [--json OUT.json]

Runs `run.py play SETLIST --headless --install --supervised --time-scale X --duration H*3600
--stats-json ...` (--supervised: the engine itself, so a crash fails the soak instead of being
restarted away) and samples /proc/<pid>/{status,task,fd} of the engine and of every process under
it (speech worker, ffmpeg ...) about 300 times. Prints, as JSON:

- RSS after warm-up and at the end and the growth in %, also the RSS by tenths of the run;
- threads and open file descriptors after warm-up and at the end (medians of 5 samples each, so a
  file open for one write does not count as growth), and the same for the whole process tree;
- poems finished in the transcript, per open simulated hour in the first and the second half (the
  rate must not decay), and the number of closing/opening changes crossed.

Target (issue 7): RSS growth < 5 %, no growth in threads, fds or processes, poems at a steady rate.
The default, 24 simulated hours at --time-scale 100, takes about 15 minutes.
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
HOURS_ADDRESSES = ("/lectern/blackout", "/lectern/resume")  # opening hours; other schedule commands are [[at]]


def proc_sample(pid: int) -> dict | None:
    """RSS (MB), threads and open fds of one process, from /proc; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kb = next(int(ln.split()[1]) for ln in status.splitlines() if ln.startswith("VmRSS"))
        threads = len(os.listdir(f"/proc/{pid}/task"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration, ValueError):
        return None
    return {"rss_mb": rss_kb / 1024, "threads": threads, "fds": fds}


def descendants(pid: int) -> list[int]:
    """All processes under pid (children of every thread, recursively)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                kids = [int(k) for k in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def sample(pid: int) -> dict | None:
    """The engine's figures and its process tree's totals."""
    main = proc_sample(pid)
    if main is None:
        return None
    tree = [s for s in (proc_sample(p) for p in descendants(pid)) if s]
    return {**main, "tree_rss_mb": main["rss_mb"] + sum(s["rss_mb"] for s in tree), "tree_procs": 1 + len(tree),
            "tree_threads": main["threads"] + sum(s["threads"] for s in tree),
            "tree_fds": main["fds"] + sum(s["fds"] for s in tree)}


def read_events(folder: Path) -> list[dict]:
    events = []
    for f in sorted(folder.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return events


def open_intervals(events: list[dict], duration: float) -> list[tuple[float, float]]:
    """Open stretches on the engine clock, from the schedule's blackout/resume commands."""
    schedule = [e for e in events if e.get("event") == "command" and e.get("source") == "schedule"
                and e["address"] in HOURS_ADDRESSES]
    opened, t_open = [], min((e["t"] for e in events), default=0.0)
    for e in schedule:
        if e["address"].endswith("blackout") and t_open is not None:
            opened.append((t_open, e["t"]))
            t_open = None
        elif e["address"].endswith("resume") and t_open is None:
            t_open = e["t"]
    if t_open is not None:
        opened.append((t_open, duration))
    return opened


def timetable_firings(events: list[dict]) -> list[str]:
    """The [[at]] firings in the transcript: "simulated wall time  address args  applied"."""
    return [f"{e['wall'][:19]}  {e['address']} {' '.join(map(str, e.get('args', [])))}  "
            f"{'ok' if e.get('applied') else 'refused'}"
            for e in events if e.get("event") == "command" and e.get("source") == "schedule"
            and e["address"] not in HOURS_ADDRESSES]


def _median_load(samples: list[dict], lo: bool) -> float | None:
    if not samples:
        return None
    mid = samples[-1]["t"] / 2
    part = [s["load"] for s in samples if (s["t"] < mid) == lo]
    return round(statistics.median(part), 2) if part else None


def _overlap(a: float, b: float, spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(b, y) - max(a, x)) for x, y in spans)


def scene_rates(events: list[dict], opened: list[tuple[float, float]], t0: float, half: float,
                end: float) -> dict[str, list[float | None]]:
    """Poems finished per open simulated hour spent in each scene, [first half, second half]: the
    scenes differ a lot (a flick scene finishes one long poem per visit), so a run whose halves hold
    a different mix of scenes shows a changed overall rate without anything slowing down."""
    scenes = [(e["t"], e["name"]) for e in events if e.get("event") == "scene"]
    if not scenes:
        return {}
    stints = [(t, scenes[i + 1][0] if i + 1 < len(scenes) else end, name) for i, (t, name) in enumerate(scenes)]
    scene_of = {e["n"]: e.get("scene") for e in events if e.get("event") == "poem_start"}
    names = {e["n"]: e["name"] for e in events if e.get("event") == "scene"}
    out: dict[str, list[float | None]] = {}
    for name in sorted({n for _, _, n in stints}):
        rates: list[float | None] = []
        for lo, hi in ((t0, half), (half, end)):
            secs = sum(_overlap(max(a, lo), min(b, hi), opened) for a, b, n in stints if n == name and b > lo and a < hi)
            count = sum(1 for e in events if e.get("event") == "poem_end" and not e.get("partial")
                        and lo <= e["t"] < hi and names.get(scene_of.get(e["n"])) == name)
            rates.append(round(count / (secs / 3600), 1) if secs > 60 else None)
        out[name] = rates
    return out


def figures(samples: list[dict], events: list[dict], duration: float, warmup_s: float) -> dict:
    """The soak's figures from the /proc samples (t in real seconds) and the transcript events."""
    warm = [s for s in samples if s["t"] >= warmup_s] or samples
    body = warm[:-2] if len(warm) > 7 else warm  # the last samples may catch the shutdown

    def start(k: str) -> float:
        return statistics.median(s[k] for s in body[:5])

    def end(k: str) -> float:
        return statistics.median(s[k] for s in body[-5:])

    ends = [e["t"] for e in events if e.get("event") == "poem_end" and not e.get("partial")]
    opened = open_intervals(events, duration)
    schedule = [e for e in events if e.get("event") == "command" and e.get("source") == "schedule"
                and e["address"] in HOURS_ADDRESSES]
    t0 = min((e["t"] for e in events), default=0.0)
    half = (t0 + duration) / 2

    def rate(lo: float, hi: float) -> float:
        secs = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in opened)
        return sum(1 for t in ends if lo <= t < hi) / (secs / 3600) if secs > 0 else 0.0

    out = {
        "load_avg_1min_median_first_half": _median_load(samples, lo=True),
        "load_avg_1min_median_second_half": _median_load(samples, lo=False),
        "rss_mb_after_warmup": round(start("rss_mb"), 1), "rss_mb_end": round(end("rss_mb"), 1),
        "rss_growth_pct": round(100 * (end("rss_mb") - start("rss_mb")) / start("rss_mb"), 2),
        "rss_mb_max": round(max(s["rss_mb"] for s in samples), 1),
        "threads_start": start("threads"), "threads_end": end("threads"),
        "fds_start": start("fds"), "fds_end": end("fds"),
        "tree_rss_mb_after_warmup": round(start("tree_rss_mb"), 1), "tree_rss_mb_end": round(end("tree_rss_mb"), 1),
        "tree_procs_start": start("tree_procs"), "tree_procs_end": end("tree_procs"),
        "tree_threads_start": start("tree_threads"), "tree_threads_end": end("tree_threads"),
        "tree_fds_start": start("tree_fds"), "tree_fds_end": end("tree_fds"),
        "poems": len(ends),
        "poems_per_open_sim_hour_first_half": round(rate(t0, half), 1),
        "poems_per_open_sim_hour_second_half": round(rate(half, duration), 1),
        "open_sim_hours": round(sum(b - a for a, b in opened) / 3600, 2),
        "open_close_changes": len(schedule),
        "poems_per_open_sim_hour_by_scene": scene_rates(events, opened, t0, half, duration),
        "rss_mb_by_tenth": [round(warm[min(len(warm) - 1, int(i * len(warm) / 10))]["rss_mb"], 1) for i in range(10)],
        "samples": len(samples),
        "timetable_firings": timetable_firings(events),
    }
    return out


def verdict(f: dict, exit_code: int | None, max_growth_pct: float = 5.0) -> list[str]:
    """What misses the target (empty: pass)."""
    misses = []
    if exit_code != 0:
        misses.append(f"engine exit code {exit_code}")
    if f["rss_growth_pct"] >= max_growth_pct:
        misses.append(f"RSS grew {f['rss_growth_pct']} % (target < {max_growth_pct} %)")
    for k in ("threads", "fds", "tree_procs", "tree_threads", "tree_fds"):
        if f[f"{k}_end"] > f[f"{k}_start"]:
            misses.append(f"{k} grew {f[f'{k}_start']} -> {f[f'{k}_end']}")
    first, second = f["poems_per_open_sim_hour_first_half"], f["poems_per_open_sim_hour_second_half"]
    if not (second >= 0.8 * first > 0):
        misses.append(f"poem rate {first} -> {second} per open hour")
    return misses


def run_soak(setlist: str, hours: float, time_scale: float, warmup: float, out: Path,
             extra: list[str] | None = None) -> tuple[dict, int | None]:
    """Play and sample; returns (figures, engine exit code). Transcripts etc. stay in `out`."""
    duration = hours * 3600
    cmd = [sys.executable, "run.py", "play", setlist, "--headless", "--window", "640x360", "--install",
           "--supervised", "--quiet", "--osc-port", "0", "--time-scale", str(time_scale), "--duration",
           str(duration), "--transcript-dir", str(out / "sessions"), "--stats-json", str(out / "stats.json"),
           *(extra or [])]
    env = {**os.environ, "LECTERN_STATE_DIR": str(out)}
    real = duration / time_scale
    t0 = time.monotonic()
    with open(out / "stderr.log", "w") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        samples = []
        while proc.poll() is None:
            s = sample(proc.pid)
            if s:  # the load shows when other work on the machine slowed the generator down
                samples.append({"t": time.monotonic() - t0, "load": os.getloadavg()[0], **s})
            time.sleep(max(0.2, real / 300))
    if not samples:
        return {"error": "the engine ended before the first sample", "exit": proc.returncode}, proc.returncode
    f = figures(samples, read_events(out / "sessions"), duration, warmup * real)
    f = {"setlist": setlist, "simulated_hours": hours, "time_scale": time_scale,
         "wall_minutes": round((time.monotonic() - t0) / 60, 1), "exit": proc.returncode, **f}
    stats = out / "stats.json"
    f["stats"] = json.loads(stats.read_text()) if stats.exists() else None
    status = out / "status.json"
    f["status_poems"] = json.loads(status.read_text()).get("poems") if status.exists() else None
    f["output"] = str(out)
    return f, proc.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("setlist", nargs="?", default="setlists/soak.toml")
    p.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    p.add_argument("--time-scale", type=float, default=100.0, help="engine seconds per real second (default 100)")
    p.add_argument("--warmup", type=float, default=0.25,
                   help="fraction of the run counted as warm-up, while caches (fonts, rendered lines) fill (default 0.25)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.add_argument("--start-wall", metavar="ISO", help="simulated wall time the run starts at (passed to play)")
    args = p.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="lectern-soak-"))
    f, code = run_soak(args.setlist, args.hours, args.time_scale, args.warmup, out,
                       extra=["--start-wall", args.start_wall] if args.start_wall else None)
    print(json.dumps(f, indent=1))
    if args.json:
        args.json.write_text(json.dumps(f, indent=1))
    misses = verdict(f, code) if "error" not in f else [f["error"]]
    print("soak:", "PASS" if not misses else "FAIL: " + "; ".join(misses), file=sys.stderr)
    return 0 if not misses else 1


if __name__ == "__main__":
    sys.exit(main())
