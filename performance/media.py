"""ffmpeg helpers shared by the live recorder and the offline renderer.

Output that video sites take as is: H.264 High profile, yuv420p, AAC 48 kHz, +faststart. (x264's
`ultrafast` alone comes out as Constrained Baseline; with 8x8dct it is High, and it is what both the
live recorder and the offline render use: on 2 cores `veryfast` held the render under 2x real time
at 1080p30, ultrafast+8x8dct reaches 2.6x for files about twice as large, still ~0.5 Mbit/s.)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

X264 = ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p", "-tune", "stillimage"]
# the fastest x264 preset, with 8x8 transforms so the stream is still High profile, leaving
# the CPU to the stage and the model while the show runs
X264_FAST = ["-c:v", "libx264", "-preset", "ultrafast", "-x264-params", "8x8dct=1", "-profile:v", "high",
             "-pix_fmt", "yuv420p"]
AAC = ["-c:a", "aac", "-b:a", "160k", "-ar", "48000"]


class MediaError(Exception):
    """ffmpeg is missing or failed; the message says which and how to fix it."""


def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise MediaError("ffmpeg not found: install it with `sudo apt-get install ffmpeg` (make setup does)")
    return path


def pix_fmt_of(surface) -> tuple[str, bool]:
    """(ffmpeg pixel format of the surface's raw buffer, whether the raw buffer can be used as is)."""
    if surface.get_bytesize() == 4:
        r, g, b, _ = surface.get_masks()
        order = {0xFF0000: "r", 0xFF00: "g", 0xFF: "b"}
        if {r, g, b} == {0xFF0000, 0xFF00, 0xFF} and surface.get_pitch() == surface.get_width() * 4:
            # little-endian memory: lowest byte first
            fmt = "".join(order[m] for m in sorted((r, g, b))) + "0"
            return fmt, True
    return "rgb24", False


def raw_bytes(surface, direct: bool) -> bytes:
    # lazy: pygame (SDL) loads only once a window or surface is made; --help, check and the worker never load it
    import pygame

    return surface.get_buffer().raw if direct else pygame.image.tobytes(surface, "RGB")


def encoder(out: Path, size: tuple[int, int], fps: int, pix_fmt: str, container: list[str],
            fast: bool = True) -> subprocess.Popen:
    """An ffmpeg reading raw frames on stdin."""
    w, h = size
    cmd = [ffmpeg(), "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{w}x{h}", "-r", str(fps),
           "-i", "-", *(X264_FAST if fast else X264), "-g", str(fps * 2), *container, str(out)]
    # ffmpeg's complaints go to a file: a pipe nobody reads until the end could fill and stall it
    said = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=said)
    proc.said = said  # read with encoder_said(proc) once it has ended
    return proc


def encoder_said(proc: subprocess.Popen) -> str:
    """What an encoder wrote on stderr (its last lines matter: why it stopped)."""
    f = getattr(proc, "said", None)
    if f is None:
        return ""
    try:
        f.seek(0)
        return f.read()[-4000:].decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


def mux(video: Path, audio: Path | None, out: Path, duration: float | None = None) -> None:
    """Copy the video, encode the audio to AAC 48 kHz, move the index to the front (+faststart)."""
    cmd = [ffmpeg(), "-loglevel", "error", "-y", "-i", str(video)]
    if audio is not None and audio.exists() and audio.stat().st_size > 44:
        cmd += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", *AAC]
    cmd += ["-c:v", "copy"]
    if duration is not None:
        cmd += ["-t", f"{duration:.3f}"]
    cmd += ["-movflags", "+faststart", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise MediaError(f"{out}: ffmpeg could not finish the file ({r.stderr.strip()[-300:]})")
