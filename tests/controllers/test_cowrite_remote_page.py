"""The phone remote's word buttons in real headless Chromium, against a running co-writing show:
the candidates appear as buttons, a tap picks one, the transcript marks it as the remote's."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from test_remote import browser, free_port, until  # noqa: F401  (browser: headless Chromium)

from performance.record.transcript import chosen_words, read_events

SETLIST = """
name = "cowrite remote"
[[scene]]
name = "co-written"
layout = "reader"
model = "markov"
length = { lines = 6 }
temperature = { program = "constant", value = 0.9 }
pacing = { reveal = "words", rate = 4, hold = 3 }
cowrite = { every = "word", words = 5, choices = 5, wait = 60.0 }
"""


def test_the_remotes_word_buttons_choose(tmp_path, request):
    page = request.getfixturevalue("browser")
    (tmp_path / "set.toml").write_text(SETLIST)
    port = free_port(socket.SOCK_STREAM)
    proc = subprocess.Popen([sys.executable, "run.py", "play", str(tmp_path / "set.toml"), "--headless", "--window",
                             "320x180", "--quiet", "--osc-port", "0", "--remote", str(port), "--duration", "120", "--transcript-dir", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "stderr.log", "w"))
    try:
        t0, url = time.monotonic(), None
        while url is None:
            m = re.search(r"remote: open (\S+#token=\S+)", (tmp_path / "stderr.log").read_text())
            url = m.group(1) if m else None
            if proc.poll() is not None or time.monotonic() - t0 > 60:
                pytest.fail("the remote did not start: " + (tmp_path / "stderr.log").read_text()[-1500:])
            time.sleep(0.1)
        page.get(url)
        assert until(page, "document.getElementById('choose-2') !== null", timeout=30), "no word buttons"
        assert not page.find_element("id", "choices").get_attribute("hidden")
        word = page.find_element("id", "choose-2").text.split(" ", 1)[1]
        page.find_element("id", "choose-2").click()
        assert until(page, "document.getElementById('choices').hidden", timeout=10)  # the choice was made
    finally:
        proc.terminate()
        proc.wait(30)
    events = read_events(next(tmp_path.glob("generated-*.jsonl")))
    assert chosen_words(events)[0][1:] == (word, "remote")
