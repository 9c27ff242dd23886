"""Cross-site WebSocket hijacking, tried from a real headless Chromium (issue 27): a page served
from another local port opens the remote's WebSocket and sends commands; the remote must refuse it
before anything is sent, while its own page, opened with the announced token URL, still steers."""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = pytest.mark.slow

from performance.controllers import auth  # noqa: E402
from performance.controllers.remote import RemoteServer  # noqa: E402

EVIL = """<!doctype html><meta charset="utf-8"><title>cat pictures</title><script>
window.result = [];
function attempt(url, i) {
  const r = {opened: false, messages: [], closed: false};
  window.result[i] = r;
  const ws = new WebSocket(url);
  ws.onopen = () => {
    r.opened = true;
    ws.send(JSON.stringify({type: "connect", passcode: "lantern"}));
    ws.send(JSON.stringify({type: "command", address: "/lectern/prompt", args: ["pwned"], id: 1}));
    ws.send(JSON.stringify({type: "command", address: "/lectern/blackout", args: [1], id: 2}));
  };
  ws.onmessage = (e) => r.messages.push(e.data);
  ws.onclose = () => { r.closed = true; };
}
attempt("ws://127.0.0.1:PORT/ws", 0);
attempt("ws://localhost:PORT/ws", 1);
attempt("ws://127.0.0.1:PORT/ws?token=guess", 2);
</script>"""


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_exe = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if exe is None or not Path(driver_exe).exists():
        pytest.skip("chromium / chromedriver not installed")
    profile = tempfile.mkdtemp(prefix="lectern-chromium-")
    o = webdriver.ChromeOptions()
    for f in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"):
        o.add_argument(f)
    o.binary_location = exe
    d = webdriver.Chrome(service=Service(driver_exe), options=o)
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(params=[None, "lantern"], ids=["no-passcode", "passcode"])
def remote(request):
    q = queue.Queue()
    r = RemoteServer(q, port=0, passcode=request.param, scene_names=lambda: ["first light", "second wind"],
                     budget=auth.GuessBudget(), guess_log=auth.GuessLog())
    r.start()
    r.publish_state({"scene": [1, "first light"], "temperature": 0.7, "volume": 1.0})
    yield r, q
    r.stop()


@pytest.fixture
def evil_site(remote):
    r, _ = remote
    page = EVIL.replace("PORT", str(r.port)).encode()

    class H(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


def until(driver, script: str, timeout: float = 5.0):
    end = time.monotonic() + timeout
    while True:
        v = driver.execute_script("return " + script)
        if v or time.monotonic() > end:
            return v
        time.sleep(0.05)


def test_a_page_from_another_port_cannot_open_the_socket_or_steer(remote, evil_site, browser):
    r, q = remote
    browser.get(evil_site)
    assert until(browser, "window.result.length === 3 && window.result.every(x => x.closed)", 8)
    result = browser.execute_script("return window.result")
    for attempt in result:
        assert not attempt["opened"] and attempt["messages"] == [], result
    time.sleep(0.3)
    assert q.empty(), "a command from the other site reached the show"
    assert r.counts["origin_refused"] == 3 and r.counts["state_sent"] == 0


def test_the_remotes_own_page_with_its_token_still_steers(remote, browser):
    r, q = remote
    browser.get("about:blank")
    browser.get(r.token_url)
    assert until(browser, "document.getElementById('login').hidden && "
                          "document.getElementById('scene').textContent.includes('first light')", 8), \
        browser.execute_script("return document.body.innerText")
    assert browser.execute_script("return location.hash") == ""  # the token leaves the address bar
    assert browser.execute_script("return localStorage.getItem('lectern-token')") == r.token
    browser.find_element("id", "go").click()
    cmd = q.get(timeout=5)
    assert cmd.address == "/lectern/go" and cmd.source == "remote"
    cmd.reply(True, "standing by")
    assert until(browser, "document.getElementById('reply').textContent === 'go: standing by'")
    browser.execute_script("localStorage.clear()")


def test_the_plain_url_without_the_token_cannot_steer(remote, browser):
    r, q = remote
    browser.get("about:blank")
    browser.get(r.url)
    browser.execute_script("localStorage.clear()")
    browser.refresh()
    assert until(browser, "!document.getElementById('login').hidden", 8)
    browser.find_element("id", "go").click()
    assert until(browser, "document.getElementById('reply').textContent.includes('enter the passcode first')")
    time.sleep(0.3)
    assert q.empty()
    assert browser.execute_script("return document.getElementById('scene').textContent") == "–"
