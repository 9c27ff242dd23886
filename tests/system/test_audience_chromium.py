"""Words from the audience, end to end (issue 31 item 5): a real show (run.py play --headless
--remote, OSC on) whose setlist has [audience]; real headless Chromium opens the audience page
(no token), sends a word, and the transcript shows it seeding the next poem. The operator turns the
words off and on over OSC; a page from another origin tries to post a word and reaches nothing."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PASSCODE = "lantern"
SETLIST = """name = "audience-test"
loop = true
[[scene]]
name = "gallery"
model = "markov"
length = { lines = 2 }
pacing = { reveal = "words", rate = 8, hold = 1 }
[audience]
words = true
blocklist = ["grim"]
per_client_per_minute = 2
total_per_minute = 20
"""
EVIL = """<!doctype html><meta charset="utf-8"><title>cats</title><script>
window.done = 0;
for (const mode of ["no-cors", "cors"]) {
  fetch("http://127.0.0.1:PORT/audience/word", {method: "POST", mode: mode, body: '{"type":"word","word":"pwned"}',
        headers: mode === "cors" ? {"Content-Type": "application/json"} : {}})
    .then(() => { window.done++; }, () => { window.done++; });
}
</script>"""


def free_port(kind: int) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def osc(port: int, address: str, *args) -> None:
    from pythonosc.osc_message_builder import OscMessageBuilder

    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b.build().dgram, ("127.0.0.1", port))


def until(driver, script: str, timeout: float = 8.0):
    end = time.monotonic() + timeout
    while True:
        v = driver.execute_script("return " + script)
        if v or time.monotonic() > end:
            return v
        time.sleep(0.05)


def wait_port(port: int, proc, log: Path) -> None:
    t0 = time.monotonic()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() - t0 > 60:
                proc.kill()
                pytest.fail("the show's remote did not start: " + log.read_text()[-1500:])
            time.sleep(0.1)


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.service import Service

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_exe = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if exe is None or not Path(driver_exe).exists():
        pytest.skip("chromium / chromedriver not installed (apt chromium chromium-driver; `make setup` installs them)")
    profile = tempfile.mkdtemp(prefix="lectern-chromium-")
    o = webdriver.ChromeOptions()
    for f in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}", "--window-size=390,700"):
        o.add_argument(f)
    o.binary_location = exe
    d = webdriver.Chrome(service=Service(driver_exe), options=o)
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


def answer(driver) -> str:
    return driver.execute_script("return document.getElementById('answer').textContent")


def send(driver, word: str, expect: str) -> str:
    driver.execute_script("document.getElementById('answer').textContent = ''")
    field = driver.find_element("id", "word")
    field.clear()
    field.send_keys(word)
    time.sleep(1.1)  # the page re-enables its button a second after each answer
    driver.find_element("id", "submit").click()
    got = until(driver, f"document.getElementById('answer').textContent.includes({json.dumps(expect)})")
    assert got, f"page answered {answer(driver)!r}, expected {expect!r}"
    return answer(driver)


def test_a_word_from_chromium_seeds_the_next_poem(tmp_path, browser):
    (tmp_path / "set.toml").write_text(SETLIST)
    osc_port, remote_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    log = tmp_path / "stderr.log"
    proc = subprocess.Popen([sys.executable, "run.py", "play", str(tmp_path / "set.toml"), "--headless", "--window",
                             "320x180", "--quiet", "--osc-port", str(osc_port), "--osc-passcode", PASSCODE,
                             "--remote", str(remote_port), "--duration", "120", "--transcript-dir", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    evil = ThreadingHTTPServer(("127.0.0.1", 0), _evil_handler(remote_port))
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        wait_port(remote_port, proc, log)
        page = f"http://127.0.0.1:{remote_port}/audience"
        t0 = time.monotonic()  # the show says where the audience page is (even with --quiet), once it listens
        while page not in log.read_text() and time.monotonic() - t0 < 20:
            time.sleep(0.1)
        assert page in log.read_text()
        browser.get(page)
        assert until(browser, "!document.getElementById('send').hidden"), "the page did not show its field"
        browser.save_screenshot(str(tmp_path / "audience.png"))
        assert "thank you" in send(browser, "Lantern", "thank you")
        send(browser, "<b>grim</b>", "letters only")
        send(browser, "grim", "not this one")
        osc(osc_port, "/lectern/connect", PASSCODE)
        time.sleep(0.3)
        osc(osc_port, "/lectern/audience", 0)  # the operator closes it live
        time.sleep(0.5)
        send(browser, "salt", "off just now")
        osc(osc_port, "/lectern/audience", 1)
        osc(osc_port, "/lectern/audience/word", "osc")  # network=False: OSC cannot send a word
        time.sleep(0.5)
        browser.get(f"http://127.0.0.1:{evil.server_address[1]}/")  # another origin tries to post a word
        assert until(browser, "window.done === 2")
        browser.get(page)
        assert until(browser, "!document.getElementById('send').hidden")
        send(browser, "ember", "thank you")
        send(browser, "river", "slow down")  # two a minute from one address
        flood = asyncio.run(_flood(remote_port))  # 300 words from 60 addresses, 64 at once, through the real pipe
        time.sleep(3)  # a poem boundary: the words seed the poems that follow
    finally:
        proc.terminate()
        proc.wait(20)
        evil.shutdown()
    events = [json.loads(ln) for f in tmp_path.glob("*.jsonl") for ln in f.read_text().splitlines() if ln.strip()]
    words = [(e["word"], e["by"]) for e in events if e["event"] == "audience_word"]
    assert words[:2] == [("lantern", "audience"), ("ember", "audience")]
    assert len(words) == 20 and sum(status == 200 for status, _ in flood) == 18  # total_per_minute = 20
    assert {status for status, _ in flood} == {200, 429} and all(len(t) < 200 for _, t in flood)
    assert [e["on"] for e in events if e["event"] == "audience"] == [False, True]
    seeds = [e["word"] for e in events if e["event"] == "audience_seed"]
    assert seeds[0] == "lantern" and set(seeds) <= {w for w, _ in words}
    assert "Traceback" not in log.read_text()
    assert not [e for e in events if "pwned" in json.dumps(e) or (e["event"] == "command" and "osc" == e.get("args"))]


async def _flood(port: int) -> list[tuple[int, str]]:
    import aiohttp

    gate = asyncio.Semaphore(64)  # under the remote's cap of 128 connections (above it, the oldest are cut)

    async def one(i: int) -> tuple[int, str]:
        async with gate:
            return await post(i)

    async def post(i: int) -> tuple[int, str]:
        conn = aiohttp.TCPConnector(local_addr=(f"127.0.0.{10 + i % 60}", 0), force_close=True)
        own = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(connector=conn) as s, s.post(
                own + "/audience/word", json={"type": "word", "word": f"w{'abcdefghij'[i % 10]}ord"},
                headers={"Origin": own}) as r:
            return r.status, await r.text()

    return await asyncio.gather(*(one(i) for i in range(300)))


def _evil_handler(port: int):
    body = EVIL.replace("PORT", str(port)).encode()

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a) -> None:
            pass

    return Evil


def test_offered_words_in_chromium(browser):
    """offer = 3: the page shows three of the choices as buttons (and no text field); a tap sends one."""
    import queue

    from performance.controllers import auth
    from performance.controllers.remote import RemoteServer
    from performance.show.audience_settings import AudienceSettings

    q: queue.Queue = queue.Queue()
    r = RemoteServer(q, host="127.0.0.1", port=0, budget=auth.GuessBudget(), guess_log=auth.GuessLog(),
                     audience=AudienceSettings(words=True, offer=3, choices=("salt", "ember", "river", "stone")))
    r.start()
    got = []

    def engine() -> None:  # answers as the engine does a word it takes (its checks: tests/engine)
        cmd = q.get(timeout=20)
        got.append(cmd)
        cmd.reply(True, f"thank you: {cmd.args[0]!r} may begin the next poem")

    t = threading.Thread(target=engine, daemon=True)
    t.start()
    try:
        browser.get(r.audience_url)
        assert until(browser, "document.querySelectorAll('#offer button').length === 3")
        assert not browser.find_element("id", "send").is_displayed()  # pick only: no field to type in
        buttons = browser.find_elements("css selector", "#offer button")
        words = [b.text for b in buttons]
        assert len(set(words)) == 3 and set(words) <= {"salt", "ember", "river", "stone"}
        buttons[1].click()
        assert until(browser, "document.getElementById('answer').textContent.startsWith('thank you')")
        t.join(5)
        assert [(c.address, c.args, c.source) for c in got] == [("/lectern/audience/word", (words[1],), "audience")]
    finally:
        r.stop()
