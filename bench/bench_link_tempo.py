#!/usr/bin/env python3
"""Words on the band's beats: a Link peer plays 120 then 90 BPM; how far from its beats Lectern reveals.

    python bench/bench_link_tempo.py [--seconds 15] [--repeats 1]

Runs inside a private network namespace it makes (`unshare --net`, loopback up with multicast on;
root or user namespaces needed), so Link's multicast never leaves the machine. There a test peer
(aalink, "the band") starts at 120 BPM, and `run.py play --headless --link` plays a scene paced in
beats (two words a beat, poems on the bar). --seconds after the first word the band changes to
90 BPM; --seconds later Lectern is stopped. Each word's reveal time comes from Lectern's own
transcript (engine time t; the transcript's wall = wall0 + t places it on the wall clock), and is
placed on the band's Link timeline through samples of (wall clock, Link clock, beat) the band took
every 2 ms. The offset of a word is its distance to the nearest half beat, in ms (words shown
before Lectern first heard the session, paced in seconds as the scene falls back, are counted
apart: words_before_link_heard). Prints one JSON
object: the p50/p95/max offsets (all, at 120 and at 90), the median gap between words at each
tempo, and the stage's reveal latency (a word's transcript time to the present of the frame that
shows it, from --stats-json: what the audience sees adds that). Goal: p95 <= 20 ms at 120 BPM.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETNS_ENV = "LECTERN_BENCH_LINK_NETNS"
NETNS_SETUP = "set -e\nip link set lo up\nip link set lo multicast on\nexec \"$@\"\n"
GOAL_MS = 20.0
STEP_BEATS = 0.5  # two words a beat
SETLIST = """name = "link bench"
[[scene]]
name = "with the band"
model = "markov"
prompt = ""
length = { words = 16 }
[scene.pacing]
pace = { per = "beat", words = 2 }
start = "bar"
hold_beats = 4
bpm = 120
"""


class Band:
    """The test peer: an aalink Link on its own thread and loop, sampling its timeline every 2 ms."""

    def __init__(self, bpm: float) -> None:
        self.bpm = bpm
        self.samples: list[tuple[float, float, float, float]] = []  # (wall, link_s, beat, tempo)
        self.want: float | None = None
        self.peers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    async def _main(self) -> None:
        import aalink

        link = aalink.Link(self.bpm)
        link.quantum = 4
        link.enabled = True
        while not self._stop.is_set():
            if self.want is not None:
                link.tempo, self.want = self.want, None
            w0 = time.time()
            ls, beat, tempo = link.time.total_seconds(), link.beat, link.tempo
            self.samples.append(((w0 + time.time()) / 2, ls, beat, tempo))
            self.peers = link.num_peers
            await asyncio.sleep(0.002)
        link.enabled = False

    def beat_at_wall(self, wall: float) -> tuple[float, float]:
        """(beat, tempo) on the band's timeline at a wall-clock time, between its two nearest samples."""
        walls = [s[0] for s in self.samples]
        i = min(max(1, bisect.bisect_left(walls, wall)), len(walls) - 1)
        (w0, _, b0, t0), (w1, _, b1, t1) = self.samples[i - 1], self.samples[i]
        tempo = t0 if wall < w1 else t1
        if t0 != t1 or w1 == w0:  # the change lies between them: extrapolate from the side the word is on
            w, b = (w0, b0) if wall < w1 else (w1, b1)
            return b + (wall - w) * tempo / 60, tempo
        return b0 + (b1 - b0) * (wall - w0) / (w1 - w0), tempo


def events(path: Path) -> list[dict]:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # the line being written
    return out


def first_token(folder: Path) -> bool:
    for f in folder.glob("*.jsonl"):
        if any(e.get("event") == "token" for e in events(f)):
            return True
    return False


def run_once(seconds: float, work: Path) -> dict:
    (work / "set.toml").write_text(SETLIST)
    band = Band(120.0)
    band.start()
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
    cmd = [sys.executable, str(ROOT / "run.py"), "play", str(work / "set.toml"), "--headless", "--window", "1280x720",
           "--link", "--quiet", "--duration", str(4 * seconds + 60), "--transcript-dir", str(work),
           "--stats-json", str(work / "stats.json")]
    # SIGINT ends a show cleanly (transcript, stats); a bench started in the background has it ignored,
    # and a child would inherit that
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(work / "lectern.log", "w"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 90
        while not first_token(work):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"Lectern showed no word: {(work / 'lectern.log').read_text()[-800:]}")
            time.sleep(0.1)
        time.sleep(seconds)
        changed = time.time()
        band.want = 90.0
        time.sleep(seconds)
    finally:
        stopped = time.time()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        stop_s = time.time() - stopped
        band.stop()
    evs = events(next(work.glob("*.jsonl")))
    wall0 = statistics.median(datetime.fromisoformat(e["wall"]).timestamp() - e["t"] for e in evs)
    words = [(wall0 + e["t"], e["text"]) for e in evs if e["event"] == "token" and any(c.isalpha() for c in e["text"])]
    # words shown before Lectern heard the session (it joins as the show starts) are paced in seconds
    heard = min((wall0 + e["t"] for e in evs if e["event"] == "tempo"), default=float("inf"))
    before = sum(1 for w, _ in words if w < heard)
    rows = []
    for wall, _ in words:
        if wall < heard:
            continue
        if not band.samples[0][0] < wall < min(stopped, band.samples[-1][0]):
            continue
        beat, tempo = band.beat_at_wall(wall)
        off = (beat - round(beat / STEP_BEATS) * STEP_BEATS) * 60 / tempo * 1000
        rows.append((wall, tempo, off))
    stats = json.loads((work / "stats.json").read_text()) if (work / "stats.json").exists() else {}
    return {"rows": rows, "changed": changed, "stats": stats, "stop_s": round(stop_s, 2), "before": before,
            "tempo_events": [round(e["bpm"], 1) for e in evs if e["event"] == "tempo"],
            "lost": sum(1 for e in evs if e["event"] == "tempo_lost")}


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))], 2)


def gap(rows: list, bpm: float) -> float | None:
    walls = [w for w, t, _ in rows if abs(t - bpm) < 0.5]
    gaps = [b - a for a, b in zip(walls, walls[1:], strict=False) if b - a < 1.0]  # within a poem
    return round(statistics.median(gaps), 4) if gaps else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="seconds at each tempo (default 15)")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    if os.environ.get(NETNS_ENV) != "1":
        if not shutil.which("unshare"):
            print(json.dumps({"error": "unshare (util-linux) is not installed"}))
            return 1
        return subprocess.call(["unshare", "--net", "sh", "-c", NETNS_SETUP, "sh", sys.executable, __file__,
                                *sys.argv[1:]], env={**os.environ, NETNS_ENV: "1"})
    runs = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="lectern-link-") as d:
            runs.append(run_once(args.seconds, Path(d)))
    rows = [r for run in runs for r in run["rows"]]
    at = {bpm: [abs(o) for _, t, o in rows if abs(t - bpm) < 0.5] for bpm in (120.0, 90.0)}
    allo = [abs(o) for _, _, o in rows]
    st = runs[-1]["stats"]
    out = {
        "words": len(rows), "repeats": args.repeats, "seconds_each": args.seconds,
        "offset_ms_p50": pct(allo, 0.5), "offset_ms_p95": pct(allo, 0.95), "offset_ms_max": pct(allo, 1.0),
        "offset_ms_p95_120": pct(at[120.0], 0.95), "offset_ms_p95_90": pct(at[90.0], 0.95),
        "words_120": len(at[120.0]), "words_90": len(at[90.0]),
        "words_before_link_heard": [run["before"] for run in runs],
        "bias_ms": round(statistics.median(o for _, _, o in rows), 2) if rows else None,
        "word_gap_s_120": gap(rows, 120.0), "word_gap_s_90": gap(rows, 90.0),
        "tempo_events": runs[-1]["tempo_events"], "tempo_lost": runs[-1]["lost"],
        "reveal_latency_ms_p50": st.get("reveal_latency_ms_p50"), "reveal_latency_ms_p99": st.get("reveal_latency_ms_p99"),
        "fps": st.get("fps"), "goal_ms": GOAL_MS, "lectern_stop_s": [run["stop_s"] for run in runs],
    }
    lat = out["reveal_latency_ms_p99"]  # the audience sees a word at most this much after its transcript time
    out["on_screen_ms_p95_bound"] = round(out["offset_ms_p95"] + lat, 2) if lat is not None and rows else None
    # the words off their beat by more than 5 ms: (run, seconds after the tempo change, offset ms)
    out["off_words"] = [(i, round(w - run["changed"], 3), round(o, 1)) for i, run in enumerate(runs)
                        for w, _, o in run["rows"] if abs(o) > 5][:20]
    out["meets_goal"] = out["offset_ms_p95_120"] is not None and out["offset_ms_p95_120"] <= GOAL_MS
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
