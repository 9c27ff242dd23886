"""Recording checked with ffprobe/ffmpeg: streams, profile, size, duration, sound, crash safety,
and an offline render of the transcript with the same number of frames."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

FPS = 30


def probe(path) -> dict:
    r = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def pcm(path) -> np.ndarray:
    """The decoded audio of a file, mono float at 48 kHz."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "48000", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, np.int16).astype(np.float32) / 32768


def rms(path, start: float = 0.0) -> float:
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-ss", str(start), "-i", str(path), "-f", "s16le", "-ac", "1", "-ar",
                          "48000", "-"], capture_output=True, check=True).stdout
    a = np.frombuffer(pcm, np.int16).astype(np.float32) / 32768
    return float(np.sqrt((a ** 2).mean())) if len(a) else 0.0


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rec")
    cmd = [sys.executable, "run.py", "play", "setlists/demo.toml", "--headless", "--window", "480x270", "--duration", "8",
           "--quiet", "--osc-port", "0", "--record", str(tmp / "live.mp4"), "--transcript-dir", str(tmp / "s"),
           "--stats-json", str(tmp / "s.json")]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return tmp


def streams(info: dict, kind: str) -> list[dict]:
    return [s for s in info["streams"] if s["codec_type"] == kind]


def test_live_recording_is_what_video_sites_take(recorded):
    info = probe(recorded / "live.mp4")
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert v["codec_name"] == "h264" and v["profile"] == "High" and v["pix_fmt"] == "yuv420p"
    assert (v["width"], v["height"]) == (480, 270)
    assert a["codec_name"] == "aac" and a["sample_rate"] == "48000"
    assert abs(float(info["format"]["duration"]) - 8.0) <= 1 / FPS + 0.03
    assert int(v["nb_frames"]) == 8 * FPS + 1
    # +faststart: the moov atom comes before the media data
    head = (recorded / "live.mp4").read_bytes()[:200_000]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    assert rms(recorded / "live.mp4") > 0.005  # the demo speaks in its first seconds
    stats = json.loads((recorded / "s.json").read_text())
    assert stats["recorder_frames"] == 8 * FPS + 1 and stats["recorder_dropped"] <= 0.05 * stats["recorder_frames"]


def test_render_reproduces_the_live_recording(recorded, tmp_path):
    jsonl = next((recorded / "s").glob("*.jsonl"))
    r = subprocess.run([sys.executable, "run.py", "render", str(jsonl), "--out", str(tmp_path / "re.mp4"), "--fps", "30"],
                       cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    live, re = probe(recorded / "live.mp4"), probe(tmp_path / "re.mp4")
    assert streams(re, "video")[0]["nb_frames"] == streams(live, "video")[0]["nb_frames"]
    assert streams(re, "video")[0]["profile"] == "High" and streams(re, "audio")[0]["sample_rate"] == "48000"
    assert rms(tmp_path / "re.mp4") > 0.005
    # the last frames show the same picture
    def last_frame(p):
        return subprocess.run(["ffmpeg", "-v", "error", "-sseof", "-0.2", "-i", str(p), "-frames:v", "1", "-f", "rawvideo",
                               "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout

    a, b = (np.frombuffer(last_frame(p), np.uint8).astype(int) for p in (recorded / "live.mp4", tmp_path / "re.mp4"))
    assert a.shape == b.shape and np.abs(a - b).mean() < 3.0
    # the voice is synthesised again, the same samples where the live one was: the lit words stay in sync
    live_pcm, re_pcm = (pcm(p) for p in (recorded / "live.mp4", tmp_path / "re.mp4"))
    speech = [e for e in map(json.loads, jsonl.read_text().splitlines()) if e["event"] == "speech"]
    assert speech and speech[0]["engine"] == "piper" and speech[0]["words"]
    for e in speech:
        lo, hi = int(e["start"] * 48000), min(int(e["end"] * 48000), len(live_pcm), len(re_pcm))
        x, y = live_pcm[lo:hi], re_pcm[lo:hi]
        if len(x) > 4800:
            assert float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y))) > 0.95, e


def test_a_killed_recording_is_still_playable(tmp_path):
    cmd = [sys.executable, "run.py", "play", "setlists/safe.toml", "--headless", "--window", "320x180", "--duration", "60",
           "--quiet", "--osc-port", "0", "--record", str(tmp_path / "k.mp4"), "--transcript-dir", str(tmp_path / "s")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(6)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = tmp_path / "k.partial.mkv"
    time.sleep(1.0)  # ffmpeg finishes the file when its input pipe closes
    info = probe(partial)
    (v,) = streams(info, "video")
    assert v["codec_name"] == "h264"
    frames = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v", "-show_entries",
                             "stream=nb_read_frames", "-of", "csv=p=0", str(partial)], capture_output=True, text=True)
    assert int(frames.stdout.strip()) >= 30
