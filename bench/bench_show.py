#!/usr/bin/env python3
"""The whole show at once on this machine (issue 32 item 1): a model writing, the stage at 60 fps,
a voice speaking, sonification and a recording encoding, all on the same cores.

    .venv/bin/python bench/bench_show.py [--seconds 180] [--setlist setlists/demo.toml] [--no-record]

Plays the setlist headless (`run.py play --headless --record OUT.mp4 --stats-json ...`; the demo
has a spoken scene, a sonified one and the flick in its first minute) and prints one JSON object:

  stage        fps, frame work p99, longest gap and where the worst gaps fell (with their own work)
  model        tokens delivered and revealed per second, frames in which the reveal waited for the
               model, and the headroom: 1 / the generator thread's share of a core (a generator
               that needs 20 % of a core to keep up could write 5x as fast)
  speech       how late each spoken line's audio started after it was due (its last token on stage,
               or the line before it done sounding; p50 / p95 / worst, from the transcript)
  recorder     frames written and dropped, the video's length against the show's (ffprobe)
  cpu          seconds of CPU per owner: each thread of the show's process by name (the frame loop
               is MainThread), and each child process (speech worker, ffmpeg, the remote) by name,
               sampled from /proc while it runs; shares of the wall time
  goals        60 fps with frame p99 <= 16.7 ms, no recorder drops, headroom >= 2x, speech <= 300 ms:
               each with the figure and whether it was met

Nothing here is a test: run it on a quiet machine and read the figures (medians over --repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(name, parent pid, CPU seconds) of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    name = raw[raw.index("(") + 1: raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _cmdline_name(pid: int, fallback: str) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return fallback
    text = b" ".join(args).decode(errors="replace")
    for marker, name in (("speech_worker", "speech worker"), ("ffmpeg", "ffmpeg (recorder)"),
                         ("multiprocessing", "python child (remote)"), ("espeak", "espeak-ng")):
        if marker in text:
            return name
    return fallback


class ChildCpu:
    """Samples the CPU of every descendant of a process twice a second (cumulative, so the last
    sample before a child ends is what it used)."""

    def __init__(self, root: int) -> None:
        self.root, self.used, self.names = root, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(2)
        out: dict[str, float] = {}
        for pid, cpu in self.used.items():
            out[self.names[pid]] = round(out.get(self.names[pid], 0.0) + cpu, 2)
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            parents: dict[int, tuple[str, int, float]] = {}
            for entry in os.listdir("/proc"):
                if entry.isdigit() and (st := _stat(int(entry))) is not None:
                    parents[int(entry)] = st
            family = {self.root}
            grew = True
            while grew:
                grew = False
                for pid, (_, ppid, _) in parents.items():
                    if ppid in family and pid not in family:
                        family.add(pid)
                        grew = True
            for pid in family - {self.root}:
                name, _, cpu = parents[pid]
                self.names.setdefault(pid, _cmdline_name(pid, name))
                self.used[pid] = max(self.used.get(pid, 0.0), cpu)
            self._stop.wait(0.5)


def speech_lateness(events: list[dict]) -> list[float]:
    """Seconds from the moment each spoken line was due to its audio's start: due when its last
    token is on stage, or when the line before it has finished sounding, whichever is later (a
    voice reads one line at a time; negative: spoken ahead of the text)."""
    line_done: dict[tuple[int, int], float] = {}
    lines: dict[int, int] = {}
    for e in events:
        if e["event"] == "token":
            p = e["poem"]
            text = e.get("text", "")
            for _ in range(text.count("\n")):
                line_done.setdefault((p, lines.get(p, 0)), e["t"])
                lines[p] = lines.get(p, 0) + 1
        elif e["event"] == "poem_end":
            p = e.get("n", e.get("poem"))
            line_done.setdefault((p, lines.get(p, 0)), e["t"])
    out, voice_free = [], float("-inf")
    for e in events:
        if e["event"] == "speech" and (e["poem"], e["line"]) in line_done:
            out.append(e["start"] - max(line_done[(e["poem"], e["line"])], voice_free))
            voice_free = e["end"]
    return out


def video_seconds(path: Path) -> float | None:
    try:
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                              str(path)], capture_output=True, text=True, timeout=30)
        return round(float(out.stdout.strip()), 2)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def one_run(a: argparse.Namespace, tmp: Path) -> dict:
    stats, video = tmp / "stats.json", tmp / "show.mp4"
    cmd = [sys.executable, "run.py", "play", a.setlist, "--headless", "--duration", str(a.seconds),
           "--stats-json", str(stats), "--transcript-dir", str(tmp / "sessions"), "--quiet"]
    if not a.no_record:
        cmd += ["--record", str(video)]
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy"}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    children = ChildCpu(proc.pid)
    children.start()
    _, err = proc.communicate(timeout=a.seconds + 240)
    wall = time.monotonic() - t0
    child_cpu = children.stop()
    s = json.loads(stats.read_text()) if stats.exists() else {}
    events = [json.loads(x) for f in sorted((tmp / "sessions").glob("*.jsonl")) for x in f.read_text().splitlines()]
    late = sorted(speech_lateness(events))
    revealed = sum(1 for e in events if e["event"] == "token")
    threads = s.get("cpu_s_by_thread", {})
    gen_share = threads.get("lectern-generator", 0.0) / a.seconds
    cpu = {**{f"thread {k}": v for k, v in threads.items() if v >= 0.05}, **{f"process {k}": v for k, v in child_cpu.items()}}
    return {
        "rc": proc.returncode, "wall_s": round(wall, 1), "tracebacks": err.count("Traceback"),
        "fps": s.get("fps"), "frame_ms_p99": s.get("frame_ms_p99"), "longest_gap_ms": s.get("longest_gap_ms"),
        "worst_gaps": s.get("worst_gaps"), "gc_longest_ms": s.get("gc_longest_ms"),
        "tokens_received_per_s": round(s.get("tokens_received", 0) / a.seconds, 1),
        "tokens_revealed_per_s": round(revealed / a.seconds, 1),
        "frames_awaiting_tokens": s.get("frames_awaiting_tokens"), "frames": s.get("frames"),
        "generator_core_share": round(gen_share, 3), "headroom": round(1 / gen_share, 1) if gen_share else None,
        "speech_lines": len(late),
        "speech_late_ms_p50": round(1000 * late[len(late) // 2], 1) if late else None,
        "speech_late_ms_p95": round(1000 * late[int(0.95 * (len(late) - 1))], 1) if late else None,
        "speech_late_ms_worst": round(1000 * late[-1], 1) if late else None,
        "recorder_frames": s.get("recorder_frames"), "recorder_dropped": s.get("recorder_dropped"),
        "video_s": video_seconds(video) if not a.no_record else None,
        "cpu_s": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
        "cpu_share_of_wall": {k: round(v / a.seconds, 3) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])[:8]},
    }


def goals(r: dict) -> dict:
    def met(value, ok) -> dict:
        return {"figure": value, "met": None if value is None else bool(ok(value))}

    return {"fps >= 59.5": met(r["fps"], lambda v: v >= 59.5),
            "frame p99 <= 16.7 ms": met(r["frame_ms_p99"], lambda v: v <= 16.7),
            "no recorder drops": met(r["recorder_dropped"], lambda v: v == 0),
            "headroom >= 2x": met(r["headroom"], lambda v: v >= 2.0),
            "speech first audio <= 300 ms late": met(r["speech_late_ms_p95"], lambda v: v <= 300)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=180.0)
    p.add_argument("--setlist", default="setlists/demo.toml")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--no-record", action="store_true", help="leave the recording out (its cost, by difference)")
    a = p.parse_args()
    runs = []
    for _ in range(a.repeats):
        with tempfile.TemporaryDirectory(prefix="lectern-show-") as d:
            runs.append(one_run(a, Path(d)))
    median = runs[0] if len(runs) == 1 else {
        k: (statistics.median(r[k] for r in runs) if all(isinstance(r[k], int | float) for r in runs) else runs[0][k])
        for k in runs[0]}
    out = {"setlist": a.setlist, "seconds": a.seconds, "repeats": a.repeats, "record": not a.no_record,
           "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}, **median, "goals": goals(median)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
