"""Stage drawing speed: each layout at 1920x1080 (headless) while tokens arrive at ~30/s.

    nice .venv/bin/python bench/bench_stage.py [--seconds 20] [--size 1920x1080] [--json]
                                              [--shots /tmp/stage_shots]

Simulated engine time advances 1/60 s per frame, so the figures are the work of a frame, not the
wait for vsync: apply (the frame's events) + frame(t) + draw(). Prints frames/s (1 / mean work) and
p50/p99 ms per layout; --shots also saves one PNG per layout at the end of its run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pygame  # noqa: E402

from performance.show.look import LAYOUTS, Look  # noqa: E402
from performance.stage.draw import StageRenderer  # noqa: E402
from performance.stage.view import StageState  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "assets" / "corpora" / "poetry_en"
FPS = 60
TOKENS_PER_S = 30
EXTRA = "Naïve café — the œuvre’s ending: æther, über, señor, שלום"  # fallback glyphs in the stream


def verse() -> list[str]:
    lines = []
    for name in ("en.yeats.early.txt", "en.whitman.txt", "en.hopkins.txt"):
        lines += [ln.strip() for ln in (CORPUS / name).read_text(encoding="utf-8").splitlines() if len(ln.strip()) > 12]
    return lines


def poems(layout: str, rng: random.Random, lines: list[str]):
    """Endless poems as token lists: a sentence for `sentence`, 6-14 verse lines otherwise."""
    while True:
        if layout == "sentence":
            text = rng.choice(lines).rstrip(",;:") + " " + rng.choice(lines).lower()
        else:
            k = rng.randrange(len(lines) - 14)
            body = lines[k:k + rng.randint(6, 14)]
            if rng.random() < 0.3:
                body.insert(rng.randrange(len(body)), EXTRA)
            text = "\n".join(body)
        toks = []
        for ln in text.split("\n"):
            toks += [w + " " for w in ln.split(" ")[:-1]] + [ln.split(" ")[-1] + "\n"]
        yield toks


def events(layout: str, seconds: float, seed: int = 1):
    """(t, event) for one scene of `layout`, tokens at TOKENS_PER_S per column, a 2 s hold per poem."""
    rng = random.Random(seed)
    lines = verse()
    models = ("default", "markov", "spreeder") if layout == "columns" else ("default",)
    look = Look(caption=True, countdown=True)
    yield 0.0, {"event": "scene", "n": 1, "name": layout, "layout": layout, "look": look.to_dict(),
                "columns": [{"model": m} for m in models], "caption": True}
    n = 0
    for col, model in enumerate(models):
        t, gen = 0.05 * col, poems(layout, rng, lines)
        while t < seconds:
            n += 1
            me = n * 10 + col
            temp = round(rng.uniform(0.3, 1.2), 2)
            yield t, {"event": "poem_start", "n": me, "model": model, "seed": me, "column": col, "temperature": temp}
            for tok in next(gen):
                t += 1.0 / TOKENS_PER_S
                yield t, {"event": "token", "poem": me, "text": tok, "temperature": temp, "p": 0.5, "column": col}
            yield t, {"event": "poem_end", "n": me, "column": col}
            if layout == "reader" and me % 3 == 0:
                yield t, {"event": "pause", "seconds": 3.0, "until": t + 3.0, "column": col}
                t += 3.0
            t += 2.0


def run(layout: str, size: tuple[int, int], seconds: float, screen: pygame.Surface, shots: Path | None) -> dict:
    evs = sorted(events(layout, seconds), key=lambda e: e[0])
    state, renderer = StageState(), StageRenderer(size)
    times = []
    i = 0
    for k in range(int(seconds * FPS)):
        t = k / FPS
        t0 = time.perf_counter()
        while i < len(evs) and evs[i][0] <= t:
            state.apply({"t": evs[i][0], **evs[i][1]})
            i += 1
        view = state.frame(t)
        renderer.draw(screen, view)
        times.append(time.perf_counter() - t0)
        if shots is not None and view.countdown is not None and 1.5 < view.countdown < 1.6:
            shots.mkdir(parents=True, exist_ok=True)
            pygame.image.save(screen, str(shots / f"{layout}_countdown.png"))
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
        pygame.image.save(screen, str(shots / f"{layout}.png"))
    times.sort()
    ms = [x * 1000 for x in times]
    return {"layout": layout, "frames": len(ms), "fps": round(len(ms) / sum(times), 1),
            "draw_ms_p50": round(ms[len(ms) // 2], 3), "draw_ms_p99": round(ms[int(len(ms) * 0.99)], 3),
            "draw_ms_max": round(ms[-1], 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per layout")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--shots", type=Path, default=None, help="save one PNG per layout into this folder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    size = tuple(int(x) for x in args.size.lower().split("x"))
    pygame.display.init()
    pygame.font.init()
    screen = pygame.display.set_mode(size)
    results = [run(layout, size, args.seconds, screen, args.shots) for layout in args.layouts.split(",")]
    if args.json:
        print(json.dumps({"size": list(size), "tokens_per_s": TOKENS_PER_S, "layouts": results}))
    else:
        for r in results:
            print(f"{r['layout']:9s} {r['frames']:5d} frames  {r['fps']:7.1f} frames/s  "
                  f"draw p50 {r['draw_ms_p50']:6.2f} ms  p99 {r['draw_ms_p99']:6.2f} ms  max {r['draw_ms_max']:6.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
