"""Health: the status file (round trip through `run.py status`, staleness, a clean stop, a full
disk), the disk guard, the heartbeat (file, pipe, systemd socket), rotating logs, transcript
rotation, and the systemd unit."""

from __future__ import annotations

import configparser
import errno
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT

from performance.install import logs as logs_mod
from performance.install.diskguard import DiskGuard
from performance.install.heartbeat import Heartbeat
from performance.install.logs import rotate_transcripts, setup_logging
from performance.install.sdnotify import notify
from performance.install.status import StatusWriter, describe

FIELDS = {"uptime_s": 7200.0, "fps": 59.9, "poems": 41, "restarts": 2, "rss_mb": 212.5, "scene": "vintages",
          "open": True, "next_change": "2026-11-24T18:00:00+01:00", "setlist": "setlists/gallery.toml",
          "errors": ["model char-lstm: model.safetensors missing; using default"]}


def wait_for(pred, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def status_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", "status", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=30)


def test_status_round_trip_through_run_py_status(tmp_path):
    path = tmp_path / "status.json"
    w = StatusWriter(path)
    w.update({**FIELDS, "poems": 40})
    w.update(FIELDS)  # only the latest is kept
    wait_for(lambda: path.exists() and json.loads(path.read_text())["poems"] == 41)
    data = json.loads(path.read_text())
    assert {k: data[k] for k in FIELDS} == FIELDS and data["pid"] == os.getpid()
    assert abs(data["written"] - time.time()) < 5
    r = status_cli("--file", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "Lectern installation: running" in out and "vintages" in out and "2.00 h" in out
    assert "poems shown 41" in out and "restarts    2" in out and "212.5 MB" in out and "char-lstm" in out
    assert "next change 2026-11-24T18:00:00+01:00" in out
    r = status_cli("--file", str(path), "--json")
    assert json.loads(r.stdout)["fps"] == 59.9


def test_update_returns_at_once(tmp_path):
    w = StatusWriter(tmp_path / "status.json")
    t0 = time.perf_counter()
    for i in range(1000):
        w.update({**FIELDS, "poems": i})
    assert (time.perf_counter() - t0) / 1000 < 0.0005
    path = tmp_path / "status.json"
    wait_for(lambda: path.exists() and json.loads(path.read_text())["poems"] == 999)
    assert w.writes < 1000  # the thread wrote the latest, not every one


def test_stale_and_missing_status_say_not_running(tmp_path):
    path = tmp_path / "status.json"
    path.write_text(json.dumps({**FIELDS, "written": time.time() - 600}))
    r = status_cli("--file", str(path))
    assert r.returncode == 1 and "NOT RUNNING (last heard 10 min ago" in r.stdout
    r = status_cli(env={"LECTERN_STATE_DIR": str(tmp_path / "nowhere")})
    assert r.returncode == 1 and f"no installation status at {tmp_path / 'nowhere' / 'status.json'}" in r.stdout
    path.write_text("{not json")
    r = status_cli("--file", str(path))
    assert r.returncode == 1 and "unreadable status file" in r.stdout


def test_clean_stop_and_supervisor_state_are_shown(tmp_path):
    path = tmp_path / "status.json"
    w = StatusWriter(path)
    w.update(FIELDS)
    w.close()
    assert json.loads(path.read_text())["stopped"] is True
    (tmp_path / "supervisor.json").write_text(json.dumps(
        {"state": "waiting", "restarts": 7, "safe": True, "last_exit": -11, "last_reason": None,
         "next_start": time.time() + 30.4}))
    r = status_cli("--file", str(path))
    assert r.returncode == 1
    assert "STOPPED (ended cleanly" in r.stdout
    assert "7 restarts; playing the SAFE setlist" in r.stdout and "last end: exit (-11)" in r.stdout
    assert "restarting in 30 s" in r.stdout


def test_a_stopped_supervisor_means_stopped_even_without_a_closed_status(tmp_path):
    path = tmp_path / "status.json"
    path.write_text(json.dumps({**FIELDS, "next_change": None, "written": time.time() - 1}))
    (tmp_path / "supervisor.json").write_text(json.dumps({"state": "stopped", "restarts": 0, "written": time.time()}))
    r = status_cli("--file", str(path))
    assert r.returncode == 1 and "STOPPED" in r.stdout and "next change none (no opening hours set)" in r.stdout


def test_describe_ages():
    now = 1_800_000_000.0
    assert "running" in describe({**FIELDS, "written": now - 2}, now)
    assert "last heard 45 s ago" in describe({**FIELDS, "written": now - 45}, now)
    assert "last heard 3.0 h ago" in describe({**FIELDS, "written": now - 3 * 3600}, now)


def test_status_on_a_full_disk_pauses_then_resumes(tmp_path, caplog):
    path = tmp_path / "status.json"
    # the kernel's own "disk full": /dev/full answers every write with ENOSPC
    (tmp_path / "status.json.tmp").symlink_to("/dev/full")
    w = StatusWriter(path, retry_s=0.3)
    with caplog.at_level(logging.WARNING, logger="lectern.disk"):
        w.update(FIELDS)
        wait_for(lambda: w.guard.errors == 1)
        assert not path.exists() and not (tmp_path / "status.json.tmp").exists()  # no half file left
        w.update(FIELDS)  # within the pause: skipped, not retried
        time.sleep(0.1)
        assert w.guard.errors == 1 and not path.exists()
        time.sleep(0.3)
        w.update(FIELDS)
        wait_for(path.exists)
    assert json.loads(path.read_text())["poems"] == 41
    text = caplog.text
    assert "No space left on device" in text and "paused for 0 s" in text and "resumed" in text


def test_disk_full_fault_pauses_writing(tmp_path, monkeypatch):
    monkeypatch.setenv("LECTERN_FAULTS", "disk_full")
    w = StatusWriter(tmp_path / "status.json", retry_s=0.05)
    w.update(FIELDS)
    wait_for(lambda: w.guard.errors >= 1)
    time.sleep(0.1)
    assert not (tmp_path / "status.json").exists()
    monkeypatch.setenv("LECTERN_FAULTS", "")
    time.sleep(0.06)
    w.update(FIELDS)
    wait_for((tmp_path / "status.json").exists)


def test_disk_guard_retries_after_a_while(caplog):
    now = [100.0]
    g = DiskGuard(retry_s=30, what="transcripts", clock=lambda: now[0])
    assert g.ok_to_write()
    with caplog.at_level(logging.WARNING, logger="lectern.disk"):
        g.note_error(OSError(errno.ENOSPC, "No space left on device"))
        g.note_error(OSError(errno.ENOSPC, "No space left on device"))  # one log line per pause
        assert not g.ok_to_write()
        now[0] = 129.9
        assert not g.ok_to_write()
        now[0] = 132.0  # 30 s after the second error
        assert g.ok_to_write()
        g.note_ok()
        g.note_ok()
    assert caplog.text.count("transcripts paused for 30 s") == 1
    assert caplog.text.count("transcripts resumed after 2 failed attempts") == 1


def test_heartbeat_file_goes_stale_when_the_frame_loop_stops(tmp_path):
    path = tmp_path / "hb"
    hb = Heartbeat(path, interval=0.1)
    try:
        time.sleep(0.2)
        assert not path.exists()  # no frame yet: nothing to say
        hb.beat()
        wait_for(path.exists)
        inode, first = path.stat().st_ino, path.stat().st_mtime_ns
        hb.beat()
        wait_for(lambda: path.stat().st_mtime_ns > first)
        assert path.stat().st_ino == inode  # touched, not rewritten: works on a full disk
        sent = hb.beats_sent
        time.sleep(0.3)  # the loop "hangs": no beat()
        assert hb.beats_sent == sent
        stale = path.stat().st_mtime_ns
        time.sleep(0.2)
        assert path.stat().st_mtime_ns == stale
    finally:
        hb.stop()


def test_heartbeat_through_a_pipe_from_the_environment(monkeypatch):
    r, w = os.pipe()
    monkeypatch.setenv("LECTERN_HEARTBEAT", str(w))
    hb = Heartbeat(interval=0.1)
    try:
        assert hb.fd == w and hb.path is None
        got = b""
        deadline = time.monotonic() + 3
        while len(got) < 3 and time.monotonic() < deadline:
            hb.beat()
            time.sleep(0.06)
            os.set_blocking(r, False)
            try:
                got += os.read(r, 100)
            except BlockingIOError:
                pass
        assert got[:3] == b"..."
    finally:
        hb.stop()
        os.close(r)
        os.close(w)


def test_heartbeat_tells_systemd_ready_then_watchdog(tmp_path, monkeypatch):
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(3)
        monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
        hb = Heartbeat(None, interval=0.1)
        try:
            with pytest.raises(TimeoutError):
                sock.settimeout(0.3)
                sock.recv(64)  # no frame, no READY, no WATCHDOG
            sock.settimeout(3)
            hb.ready()
            hb.beat()
            assert [sock.recv(64), sock.recv(64)] == [b"READY=1", b"WATCHDOG=1"]
        finally:
            hb.stop()
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert notify("WATCHDOG=1") is False  # no listener: no exception either
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notify("READY=1") is False


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in before:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def test_logs_rotate_and_setup_twice_does_not_double(tmp_path, restore_logging):
    setup_logging(tmp_path / "logs", quiet=True, max_bytes=2000, backups=2)
    setup_logging(tmp_path / "logs", quiet=True, max_bytes=2000, backups=2)
    ours = [h for h in logging.getLogger().handlers if getattr(h, logs_mod._MARK, False)]
    assert len(ours) == 2  # one console, one file
    log = logging.getLogger("lectern.test")
    for i in range(200):
        log.info("line %03d of a long enough message to fill the file", i)
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["lectern.log", "lectern.log.1", "lectern.log.2"]
    assert all(p.stat().st_size <= 2000 for p in (tmp_path / "logs").iterdir())
    assert "line 199" in (tmp_path / "logs" / "lectern.log").read_text()
    logging.getLogger("performance.stage.fonts").warning("from a module logger")
    assert "from a module logger" in (tmp_path / "logs" / "lectern.log").read_text()


def test_transcripts_rotate_in_pairs_oldest_first_never_the_newest(tmp_path):
    stems = [f"generated-2026-11-2{d}T10-00-00_gallery" for d in range(1, 5)]
    for s in stems:
        (tmp_path / f"{s}.txt").write_bytes(b"x" * 100)
        (tmp_path / f"{s}.jsonl").write_bytes(b"x" * 400)
    (tmp_path / "harvest.txt").write_bytes(b"x" * 5000)  # not a transcript: kept
    removed = rotate_transcripts(tmp_path, 1200)
    assert sorted(p.name for p in removed) == sorted(f"{s}.{e}" for s in stems[:2] for e in ("txt", "jsonl"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["harvest.txt"] + [f"{s}.{e}" for s in stems[2:] for e in ("txt", "jsonl")])
    assert sorted(p.name for p in rotate_transcripts(tmp_path, 10)) == [f"{stems[2]}.{e}" for e in ("jsonl", "txt")]
    assert (tmp_path / f"{stems[3]}.jsonl").exists()  # the newest stays even over the cap


def unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read_string((ROOT / "deploy" / "lectern.service").read_text())
    return cp


def test_systemd_unit_supervises_with_watchdog_and_notify():
    u = unit()
    s = u["Service"]
    assert s["Type"] == "notify" and s["NotifyAccess"] == "all" and s["Restart"] == "always"
    assert s["KillMode"] == "mixed"  # SIGTERM to the supervisor only; it stops the engine cleanly
    assert int(s["WatchdogSec"]) >= 10 and int(s["TimeoutStopSec"]) > 15  # supervisor's stop timeout
    assert "run.py play" in s["ExecStart"] and "--install" in s["ExecStart"]
    assert u["Install"]["WantedBy"] == "graphical-session.target"
    assert "graphical-session.target" in u["Unit"]["After"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path):
    text = (ROOT / "deploy" / "lectern.service").read_text().replace("%h/lectern", str(ROOT))
    text = text.replace(str(ROOT) + "/.venv/bin/python", sys.executable)
    (tmp_path / "lectern.service").write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "lectern.service")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr


def test_deploy_readme_covers_the_technicians_questions():
    text = Path(ROOT / "deploy" / "README.md").read_text()
    for needle in ("systemctl --user enable --now lectern", "Automatic Login", "unclutter", "xset s off",
                   "idle-delay 0", "python run.py status", "supervisor.log", "journalctl --user -u lectern",
                   "ctrl+shift+u", "safe_setlist"):
        assert needle.lower() in text.lower(), needle
