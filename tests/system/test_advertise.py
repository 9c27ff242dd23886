"""Zeroconf: the OSC port announced as `_osc._udp`, found by a real Zeroconf browser from the same
library; only beyond loopback, never with --no-advertise.

Every test here that announces or browses (mDNS multicast) runs inside a private network namespace
it makes (`unshare --net`): loopback up with multicast on, and one interface, lan0, with a private
address standing in for the LAN. Nothing leaves the machine. Where unshare is not permitted they skip.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT
from zeroconf import ServiceBrowser, ServiceListener, Zeroconf

from performance.controllers.advertise import SERVICE, Advertiser, _addresses, should_advertise


class Found(ServiceListener):
    """Collects (name, port, addresses, properties) of every _osc._udp service seen; and removals."""

    def __init__(self) -> None:
        self.services: dict[str, tuple] = {}
        self.removed: set[str] = set()
        self.changed = threading.Event()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        info = zc.get_service_info(type_, name, timeout=3000)
        if info is not None:
            props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
            self.services[name] = (info.port, info.parsed_addresses(), props)
        self.changed.set()

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.add_service(zc, type_, name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.removed.add(name)
        self.changed.set()


NETNS_ENV = "LECTERN_TEST_NETNS"
LAN = "10.211.0.2"  # lan0's address inside the namespace (a private range)
NETNS_IFACES = {"lo", "lan0", "lan0peer"}
# lan0 is a dummy interface where the kernel has the module, else one end of a veth pair whose other
# end (lan0peer) is in the same namespace: multicast sent on it comes back to this namespace only
NETNS_SETUP = f"""set -e
ip link set lo up
ip link set lo multicast on
ip link add lan0 type dummy 2>/dev/null || ip link add lan0 type veth peer name lan0peer
ip addr add {LAN}/24 dev lan0
ip link set lan0 multicast on
ip link set lan0 up
if ip link show lan0peer >/dev/null 2>&1; then ip link set lan0peer up; fi
exec "$@"
"""


def _unshare_refused() -> str | None:
    """Why a private network namespace cannot be made here, or None when it can."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "unshare or ip (iproute2) is not installed"
    r = subprocess.run(["unshare", "--net", "sh", "-c", NETNS_SETUP, "sh", "true"], capture_output=True, text=True)
    return None if r.returncode == 0 else f"unshare --net not permitted here ({r.stderr.strip()[:100]})"


def private_network(test):
    """Run `test` in a pytest of its own inside a fresh network namespace; inside it, first make
    sure the namespace is the private one (no interface but lo and lan0)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        if os.environ.get(NETNS_ENV) == "1":
            names = {n for _, n in socket.if_nameindex()}
            assert names <= NETNS_IFACES, f"multicast test outside its private namespace: interfaces {names}"
            return test(*args, **kwargs)
        why = _unshare_refused()
        if why:
            pytest.skip(why)
        r = subprocess.run(["unshare", "--net", "sh", "-c", NETNS_SETUP, "sh", sys.executable, "-m", "pytest",
                            "-o", "addopts=", "-q", "-rs", "-m", "", "-p", "no:cacheprovider", f"tests/system/test_advertise.py::{test.__name__}"],
                           cwd=ROOT, env={**os.environ, NETNS_ENV: "1"}, capture_output=True, text=True, timeout=300)
        tail = (r.stdout + r.stderr)[-3000:]
        if r.returncode == 0 and " skipped" in r.stdout and " passed" not in r.stdout:
            pytest.skip(f"in the private namespace: {tail.strip().splitlines()[-2][:200]}")
        assert r.returncode == 0 and "1 passed" in r.stdout, tail

    return run


@private_network
def test_multicast_tests_see_only_the_private_namespace():
    names = {n for _, n in socket.if_nameindex()}
    assert names <= NETNS_IFACES and "lan0" in names, names
    assert _addresses("0.0.0.0") == [LAN]  # the "LAN" Zeroconf announces on is lan0's private address


def wait(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def free_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_advertise_only_beyond_loopback_and_not_when_told():
    assert should_advertise("0.0.0.0") and should_advertise("") and should_advertise("192.0.2.7")
    assert not should_advertise("127.0.0.1") and not should_advertise("127.3.4.5")
    assert not should_advertise("::1") and not should_advertise("localhost")
    assert not should_advertise("0.0.0.0", no_advertise=True)


@private_network
def test_a_browser_on_loopback_finds_the_service_and_sees_it_go():
    adv = Advertiser("Lectern test-loopback", 9123, "127.0.0.1", {"prefix": "/lectern", "setlist": "demo"},
                     interfaces=["127.0.0.1"])
    browser_zc = Zeroconf(interfaces=["127.0.0.1"])
    found = Found()
    ServiceBrowser(browser_zc, SERVICE, found)
    try:
        t0 = time.monotonic()
        adv.start()
        assert time.monotonic() - t0 < 0.1  # registration probes for ~2 s, on its own thread
        name = f"Lectern test-loopback.{SERVICE}"
        assert wait(lambda: name in found.services, 10), (adv.error, found.services)
        assert found.services[name] == (9123, ["127.0.0.1"], {"prefix": "/lectern", "setlist": "demo"})
        adv.stop()
        assert wait(lambda: name in found.removed, 5)  # unregistering says goodbye
    finally:
        adv.stop()
        browser_zc.close()


@pytest.mark.slow
@private_network
def test_play_advertises_on_the_network_unless_loopback_or_no_advertise(tmp_path):
    lan = _addresses("0.0.0.0")
    if not lan:
        pytest.skip("no non-loopback IPv4 interface to browse on")
    ports = {"open": free_port(), "no-advertise": free_port(), "loopback": free_port()}
    extra = {"open": ["--osc-host", "0.0.0.0", "--allow-open-network"], "no-advertise": ["--osc-host", "0.0.0.0", "--allow-open-network", "--no-advertise"],
             "loopback": []}
    setlist = tmp_path / "markov.toml"  # no neural model: three engines start quickly side by side
    setlist.write_text(f'name = "adv"\n\n[[scene]]\nfile = "{ROOT / "scenes/markov-stream.toml"}"\n')
    browser_zc = Zeroconf(interfaces=lan)
    found = Found()
    ServiceBrowser(browser_zc, SERVICE, found)
    procs = []
    try:
        for k, port in ports.items():
            procs.append(subprocess.Popen(
                [sys.executable, "run.py", "play", "--headless", "--quiet", "--duration", "12", "--osc-port",
                 str(port), "--transcript-dir", str(tmp_path / k), *extra[k],
                 str(setlist)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        assert wait(lambda: any(s[0] == ports["open"] for s in found.services.values()), 30), found.services
        time.sleep(3)  # the others had as long to show up
        seen = {s[0] for s in found.services.values()}
        assert ports["no-advertise"] not in seen and ports["loopback"] not in seen, found.services
        [(name, (port, addrs, props))] = [(n, s) for n, s in found.services.items() if s[0] == ports["open"]]
        assert name.startswith("Lectern ") and set(addrs) <= set(lan) and props["prefix"] == "/lectern"
    finally:
        for p in procs:
            p.wait(60)
        browser_zc.close()
    assert all(p.returncode == 0 for p in procs), [p.stderr.read()[-500:] for p in procs]
