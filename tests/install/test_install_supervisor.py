"""The supervisor with real child processes (tiny `python -c` programs in place of the engine):
crash restarts with backoff, hung children killed with their whole process group, the safe
setlist after repeated crashes, planned restarts, signals forwarded, systemd notifications."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ROOT

from performance.install.supervisor import (
    PLANNED_RESTART,
    backoff,
    play_command,
    register_supervise,
    supervise,
    with_setlist,
)


def child(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code), *args]


def runs_of(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# a child that records (restart count, setlist) and then does what its exit code says
RECORD = """
import os, sys
open(sys.argv[1], 'a').write(os.environ['LECTERN_RESTARTS'] + ':' + sys.argv[2] + ' ')
"""


def dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in state  # reparented zombies count as gone


def test_backoff_sequence_doubles_and_caps():
    assert [backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff(3, cap=3) == 3


def test_crashed_child_is_restarted_with_backoff_and_the_count_reaches_it(tmp_path):
    log, waits = tmp_path / "runs", []
    code = supervise(["play", "x.toml"], child=child(RECORD + "sys.exit(3)", str(log), "{setlist}"),
                     max_restarts=4, sleep=waits.append)
    assert code == 1
    assert waits == [1, 2, 4]  # the 4th restart is where max_restarts stops the test
    assert runs_of(log) == ["0:x.toml", "1:x.toml", "2:x.toml", "3:x.toml"]


def test_backoff_starts_afresh_after_a_stable_run(tmp_path):
    waits = []
    slow_crash = "import time, sys; time.sleep(0.4); sys.exit(1)"
    supervise(["play", "x.toml"], child=child(slow_crash), stable_s=0.2, max_restarts=3, sleep=waits.append)
    assert waits == [1, 1]


def test_hung_child_is_killed_with_its_process_group(tmp_path):
    pids, log = tmp_path / "pids", tmp_path / "runs"
    hang = f"""
        import os, subprocess, sys, time
        worker = subprocess.Popen(['sleep', '60'])   # like a speech worker the engine started
        open({str(pids)!r}, 'a').write(f'{{worker.pid}} ')
        open({str(log)!r}, 'a').write('run ')
        for i in range(3):
            open(os.environ['LECTERN_HEARTBEAT'], 'w').write('x'); time.sleep(0.1)
        time.sleep(60)                               # the frame loop hangs
    """
    t0 = time.monotonic()
    code = supervise(["play", "x.toml"], child=child(hang), hang_s=0.8, grace_s=10, max_restarts=2,
                     sleep=lambda s: None, poll_s=0.05)
    elapsed = time.monotonic() - t0
    assert code == 1 and runs_of(log) == ["run", "run"]
    assert elapsed < 8  # two hangs of ~1 s, not the children's 60 s
    workers = [int(p) for p in runs_of(pids)]
    deadline = time.monotonic() + 3
    while not all(dead(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(dead(p) for p in workers), "a worker of a killed engine was left running"


def test_child_that_never_beats_is_killed_after_the_grace_period():
    t0 = time.monotonic()
    code = supervise(["play", "x.toml"], child=child("import time; time.sleep(60)"), grace_s=0.5,
                     max_restarts=1, sleep=lambda s: None, poll_s=0.05)
    assert code == 1 and time.monotonic() - t0 < 5


def test_child_ending_well_ends_the_supervisor():
    beat = "import os, time\nfor i in range(3):\n  open(os.environ['LECTERN_HEARTBEAT'], 'w').write('x'); time.sleep(0.1)"
    assert supervise(["play", "x.toml"], child=child(beat), sleep=lambda s: pytest.fail("no restart")) == 0


def test_repeated_crashes_fall_back_to_the_safe_setlist(tmp_path):
    safe = tmp_path / "quiet.toml"
    main = tmp_path / "main.toml"
    main.write_text(f'[[scene]]\nmodel = "markov"\n\n[install]\nsafe_setlist = "{safe}"\n')
    log, waits = tmp_path / "runs", []
    # crashes on the main setlist, ends well on the safe one
    prog = RECORD + f"sys.exit(0 if sys.argv[2] == {str(safe)!r} else 1)"
    code = supervise(["play", str(main), "--quiet"], child=child(prog, str(log), "{setlist}"), state_dir=tmp_path,
                     max_crashes=3, sleep=waits.append)
    assert code == 0
    assert runs_of(log) == [f"0:{main}", f"1:{main}", f"2:{main}", f"3:{safe}"]
    assert waits == [1, 2, 4]
    state = json.loads((tmp_path / "supervisor.json").read_text())
    assert state["safe"] is True and state["restarts"] == 3 and state["state"] == "stopped"


def test_safe_fallback_defaults_to_setlists_safe_for_a_broken_setlist(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[[scene]]\nmodel = \n")
    log = tmp_path / "runs"
    prog = RECORD + "sys.exit(0 if sys.argv[2].endswith('setlists/safe.toml') else 2)"
    supervise(["play", str(broken)], child=child(prog, str(log), "{setlist}"), max_crashes=2, sleep=lambda s: None)
    assert runs_of(log)[-1].endswith("setlists/safe.toml") and len(runs_of(log)) == 3


def test_planned_restart_is_immediate_and_tries_the_real_setlist_again(tmp_path):
    log, waits = tmp_path / "runs", []
    # 1st run: crash, 2nd: planned restart (daily), 3rd: ends well
    prog = RECORD + f"n = len(open(sys.argv[1]).read().split()); sys.exit({{1: 1, 2: {PLANNED_RESTART}}}.get(n, 0))"
    assert supervise(["play", "x.toml"], child=child(prog, str(log), "{setlist}"), sleep=waits.append) == 0
    assert waits == [1]  # only the crash waited
    assert runs_of(log) == ["0:x.toml", "1:x.toml", "2:x.toml"]


SUPERVISED = """
import sys
from pathlib import Path
from performance.install.supervisor import supervise
sys.exit(supervise(['play', 'x.toml'], child={child!r}, state_dir=Path({state!r}), hang_s=30, poll_s=0.05))
"""


def start_supervisor(tmp_path: Path, kid: list[str], env: dict | None = None) -> subprocess.Popen:
    code = SUPERVISED.format(child=kid, state=str(tmp_path))
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_is_passed_on_as_a_clean_stop(tmp_path):
    done = tmp_path / "done"
    kid = child(f"""
        import os, time
        try:
            while True:
                open(os.environ['LECTERN_HEARTBEAT'], 'w').write('x'); time.sleep(0.05)
        except KeyboardInterrupt:                      # the engine's clean shutdown path
            open({str(done)!r}, 'w').write('closed cleanly')
    """)
    sup = start_supervisor(tmp_path, kid)
    wait_for(lambda: (tmp_path / "supervisor.json").exists())
    time.sleep(0.3)
    sup.send_signal(signal.SIGTERM)
    _, err = sup.communicate(timeout=20)
    assert sup.returncode == 0, err
    assert done.read_text() == "closed cleanly"
    assert json.loads((tmp_path / "supervisor.json").read_text())["state"] == "stopped"


def test_sigterm_during_the_backoff_wait_ends_at_once(tmp_path):
    kid = child("import sys; sys.exit(1)")
    sup = start_supervisor(tmp_path, kid)
    wait_for(lambda: (tmp_path / "supervisor.json").exists()
             and json.loads((tmp_path / "supervisor.json").read_text())["state"] == "waiting"
             and json.loads((tmp_path / "supervisor.json").read_text())["restarts"] >= 3)  # waiting 4 s now
    t0 = time.monotonic()
    sup.send_signal(signal.SIGTERM)
    sup.communicate(timeout=20)
    assert time.monotonic() - t0 < 1.5 and sup.returncode == 0


def test_systemd_hears_ready_and_watchdog_from_the_supervisor(tmp_path):
    sock_path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(5)
        beat = "import os, time\nfor i in range(30):\n  open(os.environ['LECTERN_HEARTBEAT'], 'w').write('x'); time.sleep(0.05)"
        sup = start_supervisor(tmp_path, child(beat), env={"NOTIFY_SOCKET": str(sock_path)})
        got = [sock.recv(64).decode(), sock.recv(64).decode()]
        sup.communicate(timeout=20)
    assert got[0] == "READY=1" and got[1] == "WATCHDOG=1"


def test_command_lines():
    assert play_command(["supervise", "a.toml", "--quiet"]) == ["play", "a.toml", "--quiet", "--install"]
    assert play_command(["play", "a.toml", "--install", "--supervised"]) == ["play", "a.toml", "--install"]
    assert with_setlist(["play", "--window", "640x360", "a.toml", "--quiet"], "s.toml") == \
        ["play", "--window", "640x360", "s.toml", "--quiet"]
    p = argparse.ArgumentParser()
    register_supervise(p.add_subparsers(dest="command"))
    a = p.parse_args(["supervise", "--hang-s", "5", "a.toml", "--duration", "3", "--quiet"])
    assert (a.hang_s, a.setlist, a.rest) == (5.0, "a.toml", ["--duration", "3", "--quiet"])


def test_after_a_while_on_the_safe_setlist_the_real_one_is_tried_again(tmp_path):
    safe = tmp_path / "quiet.toml"
    main = tmp_path / "main.toml"
    main.write_text(f'[[scene]]\nmodel = "markov"\n\n[install]\nsafe_setlist = "{safe}"\n')
    log, waits = tmp_path / "runs", []
    prog = RECORD + f"""
import time
if sys.argv[2] == {str(safe)!r}:
    try:
        while True:
            open(os.environ['LECTERN_HEARTBEAT'], 'w').write('x'); time.sleep(0.05)
    except KeyboardInterrupt:
        sys.exit(0)
sys.exit(1 if open(sys.argv[1]).read().count('main') < 3 else 0)   # the fault has passed by the 3rd try
"""
    code = supervise(["play", str(main)], child=child(prog, str(log), "{setlist}"), max_crashes=2,
                     retry_real_s=0.5, sleep=waits.append, poll_s=0.05)
    assert code == 0
    assert [r.split(":")[1] for r in runs_of(log)] == [str(main), str(main), str(safe), str(main)]
    assert waits == [1, 2]  # the switch back is planned: no wait


def test_engine_ends_when_the_supervisor_is_killed(tmp_path):
    done = tmp_path / "done"
    kid = child(f"""
        import os, time
        try:
            while True:
                open(os.environ['LECTERN_HEARTBEAT'], 'w').write('x'); time.sleep(0.05)
        except KeyboardInterrupt:
            open({str(done)!r}, 'w').write('closed cleanly')
    """)
    sup = start_supervisor(tmp_path, kid)
    wait_for(lambda: (tmp_path / "supervisor.json").exists())
    time.sleep(0.3)
    sup.kill()  # SIGKILL: no chance to pass anything on
    sup.communicate(timeout=10)
    wait_for(done.exists, timeout=5)
    assert done.read_text() == "closed cleanly"
