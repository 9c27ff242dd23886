"""A full disk under --record: the WAV tap and the transcript stop or hold with one line each, no
traceback, and nothing is lost at exit without a word (issue 27, item 6). On a real full file
system: a 64 KiB tmpfs mounted for the test (skipped where mounting is not permitted)."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from datetime import datetime

import numpy as np
import pytest

from performance.record.transcript import TranscriptWriter
from performance.sound.audio import BLOCK, WavTap


@pytest.fixture
def full_disk(tmp_path):
    """A directory on a 64 KiB tmpfs, filled to the last byte."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()[:80]})")
    try:
        with open(mnt / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
def thread_errors():
    """Exceptions that escape any thread (the WAV writer dying)."""
    seen: list = []
    old = threading.excepthook
    threading.excepthook = lambda a: seen.append(a)
    yield seen
    threading.excepthook = old


def tracebacks(caplog) -> list:
    return [r for r in caplog.records if r.exc_info]


def test_wav_tap_on_a_full_disk_stops_with_one_line_and_no_traceback(full_disk, thread_errors, caplog):
    caplog.set_level(logging.INFO)
    (full_disk / "filler").unlink()
    (full_disk / "filler").write_bytes(b"\0" * (64 * 1024 - 16 * 1024))  # room for about two seconds of mix
    tap = WavTap(full_disk / "mix.wav", 48000)
    block = (np.sin(np.arange(BLOCK, dtype=np.float32)) * 0.5).astype(np.float32)
    for _ in range(400):  # ~8.5 s of mix: the disk fills on the way
        tap.write(block)
    t0 = time.monotonic()
    while not tap.error and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    for _ in range(50):
        tap.write(block)  # the show goes on: writing to a stopped tap costs nothing
    tap.close(end_frames=400 * BLOCK)  # no exception at shutdown either
    assert not thread_errors, thread_errors
    assert not tracebacks(caplog), tracebacks(caplog)
    assert tap.error and "space" in tap.error.lower()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "lectern.audio"]
    assert len(lines) == 1 and "mix.wav" in lines[0] and "the show goes on" in lines[0], lines


def test_wav_tap_that_cannot_even_start_says_so_in_one_line(full_disk, thread_errors, caplog):
    caplog.set_level(logging.INFO)
    tap = WavTap(full_disk / "mix.wav", 48000)  # not one byte left: the header cannot be written
    for _ in range(20):
        tap.write(np.zeros(BLOCK, np.float32))
    tap.close(end_frames=20 * BLOCK)
    assert not thread_errors and not tracebacks(caplog)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "lectern.audio"]
    assert len(lines) == 1 and "mix.wav" in lines[0], lines


def test_transcript_lines_that_cannot_be_written_by_exit_are_saved_elsewhere_and_said(full_disk, tmp_path, caplog,
                                                                                       monkeypatch):
    import tempfile

    caplog.set_level(logging.INFO)
    fallback = tmp_path / "tmp"
    fallback.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(fallback))
    w = TranscriptWriter(full_disk / "sessions", "s", datetime(2026, 1, 1))
    w.start()
    for i in range(40):
        w.write({"t": float(i), "event": "poem_end", "n": i, "text": f"poem number {i}"})
    w.close()
    assert not tracebacks(caplog)
    saved = sorted(fallback.rglob("*"))
    files = [p for p in saved if p.is_file()]
    jsonl = [p for p in files if p.suffix == ".jsonl"]
    assert jsonl and sum(1 for ln in jsonl[0].read_text().splitlines() if '"poem_end"' in ln) == 40, saved
    assert any("poem number 39" in p.read_text() for p in files if p.suffix == ".txt"), saved
    said = [r.getMessage() for r in caplog.records if "saved" in r.getMessage()]
    assert len(said) == 1 and str(fallback) in said[0] and "40" in said[0], [r.getMessage() for r in caplog.records]


def test_transcript_lines_with_nowhere_to_go_are_counted_in_one_line(full_disk, caplog, monkeypatch):
    import tempfile

    caplog.set_level(logging.INFO)
    monkeypatch.setattr(tempfile, "tempdir", str(full_disk))  # the fallback is full too
    monkeypatch.setenv("HOME", str(full_disk))
    w = TranscriptWriter(full_disk / "sessions", "s", datetime(2026, 1, 1))
    w.start()
    for i in range(25):
        w.write({"t": float(i), "event": "pause"})
    w.close()
    assert not tracebacks(caplog)
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage() and "25" in r.getMessage()]
    assert len(lost) == 1, [r.getMessage() for r in caplog.records]


def test_recording_on_a_full_disk_stops_in_one_line_that_says_why(full_disk, thread_errors, caplog, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    import pygame

    from performance.media import ffmpeg
    from performance.record.recorder import Recorder

    try:
        ffmpeg()
    except Exception as e:
        pytest.skip(f"no ffmpeg ({e})")
    caplog.set_level(logging.INFO)
    (full_disk / "filler").unlink()
    (full_disk / "filler").write_bytes(b"\0" * (64 * 1024 - 24 * 1024))
    r = Recorder(full_disk / "show.mp4", (160, 120), fps=30)
    r.start()
    surf = pygame.Surface((160, 120))
    rng = np.random.default_rng(1)
    t0 = time.monotonic()
    i = 0
    while not r.error and time.monotonic() - t0 < 20:  # noise compresses badly: the disk fills in a second
        pygame.surfarray.blit_array(surf, rng.integers(0, 2**24, (160, 120)))
        r.frame(surf, i / 30)
        i += 1
        time.sleep(0.01)
    for j in range(30):  # the show goes on: frames offered to a stopped recording cost nothing
        r.frame(surf, (i + j) / 30)
    r.close(end=(i + 30) / 30)
    assert not thread_errors and not tracebacks(caplog)
    lines = [r_.getMessage() for r_ in caplog.records if r_.levelno >= logging.WARNING and r_.name == "lectern.recorder"]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert "no space left" in lines[0].lower() and "show.mp4" in lines[0] and "the show goes on" in lines[0], lines
