"""Zeroconf: the OSC port announced as `_osc._udp`, found by a real Zeroconf browser from the same
library; only beyond loopback, never with --no-advertise."""

from __future__ import annotations

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
def test_play_advertises_on_the_network_unless_loopback_or_no_advertise(tmp_path):
    lan = _addresses("0.0.0.0")
    if not lan:
        pytest.skip("no non-loopback IPv4 interface to browse on")
    ports = {"open": free_port(), "no-advertise": free_port(), "loopback": free_port()}
    extra = {"open": ["--osc-host", "0.0.0.0"], "no-advertise": ["--osc-host", "0.0.0.0", "--no-advertise"],
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
