"""The Recorder driven directly with pygame surfaces at chosen engine times: one frame per tick,
late ticks repeat the previous picture and are counted, unchanged frames cost no copy, and the
finished MP4 holds exactly those pictures (decoded back with ffmpeg)."""

from __future__ import annotations

import os
import subprocess

import numpy as np

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

from performance.record.recorder import Recorder  # noqa: E402

W, H, FPS = 64, 36, 10
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def decoded_colours(path) -> list[int]:
    """Index of the dominant channel (0 r, 1 g, 2 b, 3 white) of each decoded frame."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3).astype(int).mean(axis=(1, 2))
    return [3 if f.min() > 200 else int(np.argmax(f)) for f in frames]


def test_late_ticks_repeat_the_last_picture_and_are_counted(tmp_path):
    surface = pygame.Surface((W, H), 0, 32)
    rec = Recorder(tmp_path / "u.mp4", (W, H), fps=FPS)
    rec.start()
    plan = [(0.0, RED, True), (0.05, RED, True),  # second offer in the same tick: ignored
            (0.1, GREEN, True), (0.2, BLUE, True),
            # ticks 3 and 4 never offered: the stage was late
            (0.5, WHITE, True), (0.6, WHITE, False)]
    for now, colour, changed in plan:
        surface.fill(colour)
        rec.frame(surface, now, changed=changed)
    assert rec.close(end=0.8) == tmp_path / "u.mp4"
    assert rec.frames_written == 9 and rec.dropped == 2
    assert decoded_colours(tmp_path / "u.mp4") == [0, 1, 2, 2, 2, 3, 3, 3, 3]
    assert not (tmp_path / "u.partial.mkv").exists()


def test_frame_call_is_cheap_at_1080p(tmp_path):
    import time

    surface = pygame.Surface((1920, 1080), 0, 32)
    rec = Recorder(tmp_path / "big.mp4", (1920, 1080), fps=30)
    rec.start()
    rec.frame(surface, 0.0)  # starts ffmpeg
    costs = []
    for k in range(1, 31):
        surface.fill((k * 8, 0, 0))
        t0 = time.perf_counter()
        rec.frame(surface, k / 30)
        costs.append(time.perf_counter() - t0)
        time.sleep(1 / 60)
    rec.close(end=1.0)
    # a copy of an 8 MB surface; generous for a shared 2-core machine
    assert float(np.median(costs)) < 0.01
    assert rec.frames_written == 31
