"""The learning-rate schedule: linear warm-up, then cosine down to a tenth of the peak.

Progress is the larger of the share of --steps done and the share of the --max-minutes budget
spent, so a run that the clock ends has still warmed up and annealed: its last steps run at the
minimum rate (where validation loss drops most), whatever the machine's speed. The clock is read
every step, so a shared machine that slows down mid-run stretches the schedule with it instead of
cutting it (a step-count plan made from the first steps' timing would not).
"""

from __future__ import annotations

import math

MIN_FACTOR = 0.1  # the schedule ends at this share of the peak rate
WARMUP_SHARE = 0.05  # at most this share of the run warms up (and at most 200 steps' worth)


def progress(step: int, steps: int, elapsed_s: float, budget_s: float | None) -> float:
    """0 at the start, 1 when the steps or the time budget run out, whichever is first."""
    p = step / max(1, steps)
    if budget_s:
        p = max(p, elapsed_s / budget_s)
    return min(1.0, p)


def warmup_share(steps: int, budget_s: float | None = None, step_s: float | None = None) -> float:
    """The share of progress spent warming up: 5%, or 200 steps' worth when the run is long.

    With a time budget the run's length is the steps the budget buys at the measured step time
    (`step_s`), not --steps: a budgeted run with a large --steps once warmed up for two steps at
    full rate, and a transformer started that way stalled on the bigram plateau. Until a step
    time is measured, a budgeted run warms up over 5% of it."""
    if budget_s:
        if not step_s:
            return WARMUP_SHARE
        steps = min(steps, int(budget_s / max(1e-6, step_s)))
    return min(WARMUP_SHARE, 200 / max(1, steps))


def lr_at(peak: float, p: float, warm: float) -> float:
    """The rate at progress `p` (0..1) with warm-up share `warm`."""
    if p < warm:
        return peak * max(p / warm, 0.01)
    frac = (p - warm) / max(1e-9, 1 - warm)
    return peak * (MIN_FACTOR + (1 - MIN_FACTOR) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))
