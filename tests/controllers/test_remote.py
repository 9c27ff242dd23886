"""The browser remote, end to end: a real show (run.py play --headless --remote, OSC on), driven by
real headless Chromium through selenium and the system chromedriver, with OSC beside it."""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

ROOT = Path(__file__).resolve().parents[2]
PASSCODE = "lantern"
PHONE = (390, 844)
SETLIST = """name = "remote-test"
loop = true
[[scene]]
name = "first light"
layout = "reader"
model = "markov"
length = { lines = 6 }
temperature = { program = "constant", value = 0.7 }
pacing = { reveal = "words", rate = 3, hold = 6 }
[[scene]]
name = "second wind"
layout = "reader"
model = "markov"
length = { lines = 6 }
temperature = { program = "constant", value = 0.9 }
pacing = { reveal = "words", rate = 3, hold = 6 }
"""
webdriver = pytest.importorskip("selenium.webdriver")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Osc:
    """A UDP OSC client that is also a subscriber (replies and state come back to its port)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)

    def send(self, address: str, *args) -> None:
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        self.sock.sendto(b.build().dgram, ("127.0.0.1", self.port))

    def collect(self, seconds: float) -> list[tuple[str, list]]:
        out, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            m = OscMessage(data)
            out.append((m.address, list(m.params)))
        return out


@pytest.fixture(scope="module")
def show(tmp_path_factory):
    """A headless show with OSC (passcode set) and the remote, on free ports."""
    tmp = tmp_path_factory.mktemp("remote")
    (tmp / "set.toml").write_text(SETLIST)
    osc_port, remote_port = free_port(), free_port(socket.SOCK_STREAM)
    proc = subprocess.Popen([sys.executable, "run.py", "play", str(tmp / "set.toml"), "--headless", "--window",
                             "320x180", "--quiet", "--osc-port", str(osc_port), "--osc-passcode", PASSCODE,
                             "--remote", str(remote_port), "--duration", "300", "--transcript-dir", str(tmp)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp / "stderr.log", "w"))
    osc = Osc(osc_port)
    t0 = time.monotonic()
    while True:
        osc.send("/lectern/ping")
        if any(a == "/lectern/pong" for a, _ in osc.collect(0.3)):
            break
        if proc.poll() is not None or time.monotonic() - t0 > 40:
            proc.kill()
            pytest.fail("the show did not start: " + (tmp / "stderr.log").read_text()[-1500:])
    while True:  # the remote starts after OSC answers
        try:
            socket.create_connection(("127.0.0.1", remote_port), timeout=0.3).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() - t0 > 40:
                proc.kill()
                pytest.fail("the remote did not start: " + (tmp / "stderr.log").read_text()[-1500:])
            time.sleep(0.05)
    osc.send("/lectern/connect", PASSCODE)
    osc.send("/lectern/subscribe", osc.sock.getsockname()[1])
    osc.collect(0.3)
    yield f"http://127.0.0.1:{remote_port}/", osc, tmp
    proc.terminate()
    proc.wait(20)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium at phone size (mobile emulation), through the system chromedriver."""
    from selenium.webdriver.chrome.service import Service

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_exe = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if exe is None or not Path(driver_exe).exists():
        pytest.skip("chromium / chromedriver not installed (apt chromium chromium-driver; `make setup` installs them)")
    profile = tempfile.mkdtemp(prefix="lectern-chromium-")
    o = webdriver.ChromeOptions()
    for f in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"):
        o.add_argument(f)
    o.binary_location = exe
    o.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": PHONE[0], "height": PHONE[1],
                                                                    "pixelRatio": 1.0, "touch": False}})
    d = webdriver.Chrome(service=Service(driver_exe), options=o)
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


def until(driver, script: str, timeout: float = 5.0):
    """Poll a JS expression until it is truthy; its value."""
    end = time.monotonic() + timeout
    while True:
        v = driver.execute_script("return " + script)
        if v or time.monotonic() > end:
            return v
        time.sleep(0.02)


def text(driver, id_: str) -> str:
    return driver.execute_script(f"return document.getElementById('{id_}').textContent")


def state_values(osc: Osc, address: str, seconds: float = 1.5) -> list:
    return [args for a, args in osc.collect(seconds) if a == address]


def test_wrong_passcode_is_refused_then_the_right_one_connects(show, browser):
    url, osc, _ = show
    browser.get(url)
    assert until(browser, "!document.getElementById('login').hidden"), "the page did not ask for the passcode"
    assert browser.find_element("id", "login").is_displayed()
    browser.find_element("id", "passcode").send_keys("guess")
    browser.find_element("id", "connect").click()
    assert until(browser, "document.getElementById('login-error').textContent === 'wrong passcode'")
    browser.find_element("id", "go").click()  # refused: nothing reaches the show
    assert until(browser, "document.getElementById('reply').textContent.includes('enter the passcode first')")
    assert text(browser, "scene") == "–"  # and no state either
    field = browser.find_element("id", "passcode")
    field.clear()
    field.send_keys(PASSCODE)
    browser.find_element("id", "connect").click()
    assert until(browser, "document.getElementById('login').hidden")
    assert not browser.find_element("id", "login").is_displayed()
    assert until(browser, "document.getElementById('scene').textContent.includes('first light')")
    assert until(browser, "document.querySelectorAll('#scenes li').length === 2")


def test_go_slider_and_state_from_osc(show, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    url, osc, _ = show
    assert until(browser, "document.getElementById('login').hidden")
    browser.find_element("id", "go").click()
    assert until(browser, "/^go: /.test(document.getElementById('reply').textContent)"), text(browser, "reply")
    # the temperature slider: a real pointer click at 80 % of its width
    slider = browser.find_element("id", "temperature")
    width = slider.rect["width"]
    osc.collect(0.2)
    ActionChains(browser).move_to_element_with_offset(slider, int(width * 0.3), 0).click().perform()
    value = float(browser.execute_script("return document.getElementById('temperature').value"))
    assert 2.0 < value < 3.0
    assert until(browser, f"document.getElementById('temp-value').textContent.startsWith('{value:.2f}')")
    seen = state_values(osc, "/lectern/state/temperature")  # OSC subscribers see the remote's change
    assert seen and seen[-1][0] == pytest.approx(value, abs=1e-3)
    # a change from OSC reaches the page: median of 5, from the datagram to the page's text
    lat = []
    for t in (0.55, 1.25, 0.85, 1.65, 0.35):
        browser.execute_script("""
            const want = arguments[0]; window._seen = null;
            const el = document.getElementById('temp-value');
            const obs = new MutationObserver(() => { if (el.textContent.startsWith(want)) {
                window._seen = Date.now(); obs.disconnect(); } });
            obs.observe(el, {childList: true, characterData: true, subtree: true});""", f"{t:.2f}")
        sent = time.time()
        osc.send("/lectern/temperature", t)
        seen_at = until(browser, "window._seen", 3.0)
        assert seen_at, f"the page never showed temperature {t}"
        lat.append(seen_at / 1000 - sent)
    lat.sort()
    print(f"OSC → page: median {lat[2] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms")
    assert lat[2] < 0.2


def test_a_second_phone_sees_the_same_state(show, browser):
    url, osc, _ = show
    first = browser.current_window_handle
    browser.switch_to.new_window("window")
    try:
        browser.get(url)  # the passcode is remembered by this browser: it connects by itself
        assert until(browser, "document.getElementById('login').hidden && "
                              "document.getElementById('scene').textContent.includes('first light')")
        osc.send("/lectern/temperature", 1.11)
        assert until(browser, "document.getElementById('temp-value').textContent.startsWith('1.11')")
        browser.switch_to.window(first)
        assert until(browser, "document.getElementById('temp-value').textContent.startsWith('1.11')")
    finally:
        if browser.current_window_handle != first:
            browser.close()
        else:
            second = [h for h in browser.window_handles if h != first]
            for h in second:
                browser.switch_to.window(h)
                browser.close()
        browser.switch_to.window(first)


def test_panic_needs_a_half_second_hold_and_scenes_stand_by(show, browser):
    from selenium.webdriver.common.action_chains import ActionChains

    url, osc, _ = show
    panic = browser.find_element("id", "panic")
    browser.execute_script("document.getElementById('reply').textContent = ''")
    ActionChains(browser).click(panic).perform()  # a tap: nothing
    time.sleep(0.7)
    assert text(browser, "reply") == ""
    ActionChains(browser).click_and_hold(panic).pause(0.7).release().perform()
    assert until(browser, "document.getElementById('reply').textContent.startsWith('panic: ')"), text(browser, "reply")
    browser.find_element("id", "go").click()  # GO resumes after panic
    assert until(browser, "/^go: /.test(document.getElementById('reply').textContent)")
    browser.find_element("css selector", "#scenes li:nth-child(2)").click()
    assert until(browser, "document.querySelector('#scenes li:nth-child(2)').classList.contains('standby') || "
                          "document.querySelector('#scenes li:nth-child(2)').classList.contains('current')")


def test_phone_screenshot_pixels(show, browser):
    import os

    import pygame

    browser.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.2)
    png = browser.get_screenshot_as_png()
    img = pygame.image.load(io.BytesIO(png))
    assert img.get_size() == PHONE
    if os.environ.get("LECTERN_REMOTE_SCREENSHOT"):  # the README's picture
        Path(os.environ["LECTERN_REMOTE_SCREENSHOT"]).write_bytes(png)

    def colour_of(id_: str) -> tuple[int, int, int]:
        r = browser.find_element("id", id_).rect
        return tuple(img.get_at((int(r["x"] + 6), int(r["y"] + r["height"] / 2)))[:3])

    go, panic = colour_of("go"), colour_of("panic")
    assert go[1] > 110 and go[1] > go[0] + 50 and go[1] > go[2] + 50, f"GO is not green: {go}"
    assert panic[0] > 100 and panic[0] > panic[1] + 60, f"PANIC is not red: {panic}"
    assert max(img.get_at((2, PHONE[1] - 2))[:3]) < 40, "the page is not dark"
    # every control fits the phone's width: nothing scrolls sideways
    assert browser.execute_script("return document.documentElement.scrollWidth") <= PHONE[0]


def test_a_refused_edit_shows_on_the_phone_and_reload_answers_there(show, browser):
    """An edit of the running setlist on disk that the config refuses: its one line on the page
    (the Snapshot's reload_error), RELOAD answers with it, and a good edit clears it."""
    import os

    url, osc, tmp = show
    good = (tmp / "set.toml").read_text()
    (tmp / "set.toml").write_text(good.replace("rate = 3", "rate = -2", 1))
    line = f"{tmp / 'set.toml'} [[scene]] #1: key 'pacing.rate' = -2: must be a number from 0.1 to 100000.0 (finite)"
    assert until(browser, "!document.getElementById('edit').hidden", timeout=30)
    assert text(browser, "edit") == f"edit refused: {line}"
    if os.environ.get("LECTERN_REMOTE_EDIT_SCREENSHOT"):  # the picture in the handback and docs
        browser.execute_script("window.scrollTo(0, 0)")
        Path(os.environ["LECTERN_REMOTE_EDIT_SCREENSHOT"]).write_bytes(browser.get_screenshot_as_png())
    browser.find_element("id", "reload").click()
    assert until(browser, f"document.getElementById('reply').textContent.includes({line!r})", timeout=30)
    (tmp / "set.toml").write_text(good)
    assert until(browser, "document.getElementById('edit').hidden", timeout=30)
    # a scene added on disk: the phone's scene list follows once the new version is in effect (after
    # panic at once: no line is being revealed; while a poem plays it would wait for the poem's end)
    osc.send("/lectern/panic")
    assert any(a == "/lectern/reply" and args[:2] == ["/lectern/panic", "ok"] for a, args in osc.collect(1.0))
    (tmp / "set.toml").write_text(good + '[[scene]]\nname = "third eye"\nmodel = "markov"\n')
    assert until(browser, "document.querySelectorAll('#scenes li').length === 3", timeout=30)
    assert text(browser, "scenes").endswith("3. third eye")
    (tmp / "set.toml").write_text(good)
