"""Ableton Link with a real second peer (aalink) in a private network namespace the test makes.

Link multicasts on every interface: each test here reruns itself in a pytest of its own under
`unshare --net` with only loopback, up and multicast on, so nothing leaves the machine. Where a
namespace cannot be made the tests skip (they need root or user namespaces).
"""

from __future__ import annotations

import asyncio
import functools
import os
import queue
import shutil
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from performance.protocol.tempo import TempoGone, TempoState

NETNS_ENV = "LECTERN_TEST_LINK_NETNS"
NETNS_SETUP = "set -e\nip link set lo up\nip link set lo multicast on\nexec \"$@\"\n"


def _unshare_refused() -> str | None:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip (iproute2) is not installed"
    r = subprocess.run(["unshare", "--net", "sh", "-c", NETNS_SETUP, "sh", "true"], capture_output=True, text=True)
    return None if r.returncode == 0 else f"unshare --net not permitted here ({r.stderr.strip()[:100]})"


def private_network(test):
    """Run `test` in its own pytest inside a fresh network namespace (only lo, multicast on)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        if os.environ.get(NETNS_ENV) == "1":
            names = {n for _, n in socket.if_nameindex()}
            assert names == {"lo"}, f"Link test outside its private namespace: interfaces {names}"
            return test(*args, **kwargs)
        why = _unshare_refused()
        if why:
            pytest.skip(why)
        r = subprocess.run(["unshare", "--net", "sh", "-c", NETNS_SETUP, "sh", sys.executable, "-m", "pytest", "-o",
                            "addopts=", "-q", "-p", "no:cacheprovider", f"tests/controllers/test_link.py::{test.__name__}"],
                           cwd=ROOT, env={**os.environ, NETNS_ENV: "1"}, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "1 passed" in r.stdout, (r.stdout + r.stderr)[-3000:]

    return run


def latest(q: queue.Queue, kind: type, cond=lambda m: True, timeout: float = 1.0):
    """The newest message of `kind` meeting cond within timeout (None if none came)."""
    end, got = time.monotonic() + timeout, None
    while time.monotonic() < end:
        try:
            m = q.get(timeout=0.01)
        except queue.Empty:
            if got is not None:
                return got
            continue
        if isinstance(m, kind) and cond(m):
            got = m
    return got


def phase_err(a: float, b: float, quantum: float = 4.0) -> float:
    """Beats apart within the bar: Link aligns peers' phase in the quantum, not their beat counts."""
    return abs((a - b + quantum / 2) % quantum - quantum / 2)


@private_network
def test_lectern_follows_a_second_link_peer_tempo_beat_transport_and_its_leaving():
    import aalink

    from performance.controllers.link import LinkPeer

    inbox: queue.Queue = queue.Queue()
    lectern = LinkPeer(inbox, time.monotonic, bpm=100.0)  # engine time = monotonic here

    async def band_plays() -> dict:
        band = aalink.Link(120.0)
        band.quantum = 4  # as Live's default: Link aligns phase within the quantum
        band.start_stop_sync_enabled = True
        band.enabled = True
        t0 = time.monotonic()
        await asyncio.to_thread(lectern.start)  # it waits (up to 1 s) for the session's first peer
        while lectern.peers < 1 and time.monotonic() - t0 < 3:
            await asyncio.sleep(0.005)
        found = time.monotonic() - t0
        await asyncio.sleep(0.3)
        first = latest(inbox, TempoState, timeout=0.5)
        # where the band is now, and where Lectern's timeline says it is (both at one instant)
        beat_err = phase_err(first.beat_at(time.monotonic()), band.beat)
        session_bpm = band.tempo
        band.tempo = 90.0
        slow = latest(inbox, TempoState, lambda m: abs(m.bpm - 90) < 0.01, timeout=0.5)
        band.playing = True
        playing = latest(inbox, TempoState, lambda m: m.playing is True, timeout=0.5)
        slow_err = phase_err(slow.beat_at(time.monotonic()), band.beat)
        band.enabled = False
        gone = latest(inbox, TempoGone, timeout=5.0)
        return {"found": found, "first": first, "session_bpm": session_bpm, "beat_err": beat_err, "slow": slow, "slow_err": slow_err,
                "playing": playing, "gone": gone}

    try:
        got = asyncio.run(band_plays())
    finally:
        lectern.stop()
    assert got["found"] < 1.0  # two peers find each other within a second
    # Lectern follows the session's tempo (Link keeps one of the two peers' timelines: either)
    assert got["first"].source == "link" and got["first"].bpm == pytest.approx(got["session_bpm"])
    assert got["first"].peers == 1
    assert got["beat_err"] < 0.01, got  # a hundredth of a beat: 5 ms at 120 BPM
    assert got["slow"] is not None and got["slow_err"] < 0.01, got
    assert got["playing"] is not None  # the band's start reached Lectern (start/stop sync)
    assert got["gone"] == TempoGone("link", "the last Link peer left")


def test_link_is_off_unless_asked_and_registered():
    import argparse

    from performance.controllers.base import Context
    from performance.controllers.link import LinkControl
    from performance.controllers.registry import CONTROLLERS, add_controller_arguments

    assert LinkControl in CONTROLLERS
    p = argparse.ArgumentParser()
    add_controller_arguments(p)
    ctx = Context(setlist=None, session_dir=None)
    assert LinkControl.from_args(p.parse_args([]), ctx) is None
    assert isinstance(LinkControl.from_args(p.parse_args(["--link"]), ctx), LinkControl)
