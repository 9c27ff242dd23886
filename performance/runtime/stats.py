"""Frame statistics for --stats-json: work times, presentation gaps, command latencies."""

from __future__ import annotations

import gc
import heapq
import os
import threading
import time

FPS = 60
DROP_GAP_S = 0.025


class FrameStats:
    """Frame work times and presentation gaps, for --stats-json."""

    HIST_BINS = 20_000  # 0.01 ms bins up to 200 ms: percentiles in constant memory for weeks of frames

    def __init__(self) -> None:
        self.work_hist = [0] * self.HIST_BINS
        self.speaking_frames = 0
        self.speaking_dropped = 0
        self.speaking_time = 0.0
        self.osc_latency_ms: list[float] = []
        self.latency_ms: dict[str, list[float]] = {}  # other sources (midi, remote): message → frame
        self.frames = 0
        self.dropped = 0
        self.longest_gap = 0.0  # seconds between two presents: a 6.8 s freeze is one gap, not one drop
        self.missed = 0  # frame slots with no present (a 6.8 s freeze misses about 400)
        self.last_present: float | None = None
        self.t_first: float | None = None
        self.worst_gaps: list[tuple[float, float, float]] = []  # the 5 longest: (gap s, seconds in, frame work s)
        self.gc = GcPauses()
        self.tokens_received = 0  # tokens the worker delivered to the engine
        self.awaiting_frames = 0  # frames in which a poem on stage waited for tokens the model owed it

    def frame(self, work_s: float, presented: float, speaking: bool = False) -> None:
        self.frames += 1
        self.work_hist[min(self.HIST_BINS - 1, int(work_s * 100_000))] += 1
        late = self.last_present is not None and presented - self.last_present > DROP_GAP_S
        if late:
            self.dropped += 1
        if self.last_present is not None:
            gap = presented - self.last_present
            self.longest_gap = max(self.longest_gap, gap)
            if gap > DROP_GAP_S:  # where the worst gaps fell says whose they are (start-up, a load, an attack)
                heapq.heappush(self.worst_gaps, (gap, presented - (self.t_first or presented), work_s))
                if len(self.worst_gaps) > 5:
                    heapq.heappop(self.worst_gaps)
            self.missed += max(0, int(gap * FPS + 0.5) - 1)
        if speaking and self.last_present is not None:
            self.speaking_frames += 1
            self.speaking_dropped += int(late)
            self.speaking_time += presented - self.last_present
        if self.t_first is None:
            self.t_first = presented
        self.last_present = presented

    def fps(self) -> float:
        if self.frames < 2 or self.last_present is None or self.t_first is None:
            return 0.0
        return (self.frames - 1) / max(1e-9, self.last_present - self.t_first)

    def summary(self, width: int, height: int, first_token_s: float | None) -> dict:
        total = sum(self.work_hist)

        def pct(q: float) -> float:
            need, seen = q * total, 0
            for i, n in enumerate(self.work_hist):
                seen += n
                if n and seen >= need:
                    return round((i + 0.5) / 100, 3)
            return 0.0

        out = {"fps": round(self.fps(), 2), "frame_ms_p50": pct(0.50), "frame_ms_p99": pct(0.99),
               "frames": self.frames, "dropped": self.dropped,
               "longest_gap_ms": round(self.longest_gap * 1000, 1), "frames_missed": self.missed,
               "first_token_s": round(first_token_s, 3) if first_token_s is not None else None,
               "width": width, "height": height,
               "speaking_frames": self.speaking_frames, "speaking_dropped": self.speaking_dropped,
               "fps_while_speaking": round(self.speaking_frames / self.speaking_time, 2) if self.speaking_time else None,
               "worst_gaps": [{"ms": round(g * 1000, 1), "at_s": round(t, 2), "work_ms": round(w * 1000, 1)}
                              for g, t, w in sorted(self.worst_gaps, reverse=True)],
               "frames_awaiting_tokens": self.awaiting_frames, "tokens_received": self.tokens_received, **self.gc.summary()}
        if self.osc_latency_ms:
            lat = sorted(self.osc_latency_ms)
            out["osc_commands"] = len(lat)
            out["osc_latency_ms_p50"] = round(lat[len(lat) // 2], 2)
            out["osc_latency_ms_p99"] = round(lat[min(len(lat) - 1, int(0.99 * (len(lat) - 1) + 0.5))], 2)
        for source, ms in sorted(self.latency_ms.items()):
            lat = sorted(ms)
            out[f"{source}_commands"] = len(lat)
            out[f"{source}_latency_ms_p50"] = round(lat[len(lat) // 2], 2)
            out[f"{source}_latency_ms_p99"] = round(lat[min(len(lat) - 1, int(0.99 * (len(lat) - 1) + 0.5))], 2)
        return out


class GcPauses:
    """How long Python's cyclic garbage collector held the interpreter (every thread waits for it,
    the frame loop too): the longest pause and how many took over 10 ms, from `gc.callbacks`."""

    def __init__(self) -> None:
        self.longest_s = 0.0
        self.over_10ms = 0
        self.collections = 0
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        took = time.perf_counter() - self._t0
        self.collections += 1
        self.longest_s = max(self.longest_s, took)
        self.over_10ms += took > 0.010

    def start(self) -> None:
        """Listen to the collector (until stop)."""
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def stop(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)

    def summary(self) -> dict:
        return {"gc_collections": self.collections, "gc_longest_ms": round(self.longest_s * 1000, 1),
                "gc_over_10ms": self.over_10ms}


def thread_cpu() -> dict[str, float]:
    """CPU seconds each live thread of this process has used (by thread name; the frame loop is
    MainThread), from /proc/self/task: who takes the cores when the whole show runs (bench_show.py)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for t in threading.enumerate():
        try:
            with open(f"/proc/self/task/{t.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, TypeError, IndexError):
            continue
        out[t.name] = out.get(t.name, 0.0) + round((int(fields[11]) + int(fields[12])) / tick, 2)
    return out
