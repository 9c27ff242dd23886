"""The file watcher on its own thread: a real edit on disk (watchfiles, inotify) becomes one
Reload message on the inbox, a bad edit its one line, and /lectern/reload a read with a reply.
Every wait is bounded and ends on the message itself (Inbox.get with a timeout), not a sleep."""

from __future__ import annotations

import hashlib
import os
import queue
import threading

import pytest

from performance.controllers.inbox import Inbox
from performance.controllers.watch import Watch
from performance.protocol.actions import Reload
from performance.protocol.commands import TABLE, validate
from performance.show.config import load_setlist

WAIT_S = 20  # the most a test waits for the watcher (a busy machine); it returns as soon as the message is there

SCENE = """model = "markov"
length = {{ words = {n} }}
pacing = {{ reveal = "words", rate = 10, hold = 0.5 }}
"""


@pytest.fixture
def show(tmp_path):
    (tmp_path / "scenes").mkdir()
    (tmp_path / "scenes" / "a.toml").write_text(SCENE.format(n=10))
    sl = tmp_path / "set.toml"
    sl.write_text('[[scene]]\nfile = "scenes/a.toml"\nname = "a"\n')
    inbox = Inbox()
    w = Watch(load_setlist(sl))
    w.start(inbox)
    assert w.ready.wait(WAIT_S), "the watcher did not start watching"
    yield tmp_path, w, inbox
    w.stop()
    assert not w._thread.is_alive()


def next_reload(inbox) -> Reload:
    msg = inbox.get(timeout=WAIT_S)
    assert isinstance(msg, Reload)
    return msg


def test_an_edit_of_a_scene_file_on_disk_is_read_and_sent_once(show):
    tmp_path, w, inbox = show
    scene = tmp_path / "scenes" / "a.toml"
    scene.write_text(SCENE.format(n=4))
    msg = next_reload(inbox)
    assert msg.error == "" and msg.source == "watch"
    assert msg.setlist.entries[0].scene.length.lo == 4
    assert msg.file == str(scene.resolve())
    assert msg.sha256 == hashlib.sha256(scene.read_bytes()).hexdigest()
    assert dict(msg.files).keys() == {str((tmp_path / "set.toml").resolve()), str(scene.resolve())}
    # an editor's save: a new file renamed over the old one (the watcher sees the folder)
    tmp = tmp_path / "scenes" / ".a.toml.swp"
    tmp.write_text(SCENE.format(n=6))
    os.replace(tmp, scene)
    msg = next_reload(inbox)
    assert msg.setlist.entries[0].scene.length.lo == 6
    assert threading.current_thread() is not w._thread and w._thread.name == "lectern-watch"


def test_a_bad_edit_is_its_one_line_and_the_next_good_one_clears_it(show):
    tmp_path, w, inbox = show
    scene = tmp_path / "scenes" / "a.toml"
    scene.write_text(SCENE.format(n=0))
    bad = next_reload(inbox)
    assert bad.setlist is None
    assert bad.error.startswith(f"{scene}: key 'length.words' = 0: ")
    assert bad.sha256 == hashlib.sha256(scene.read_bytes()).hexdigest()
    scene.write_text(SCENE.format(n=5))
    good = next_reload(inbox)
    assert good.error == "" and good.setlist.entries[0].scene.length.lo == 5


def test_a_scene_the_setlist_names_from_now_on_is_watched_too(show):
    tmp_path, w, inbox = show
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "b.toml").write_text(SCENE.format(n=3))
    (tmp_path / "set.toml").write_text('[[scene]]\nfile = "scenes/a.toml"\n\n[[scene]]\nfile = "more/b.toml"\n')
    msg = next_reload(inbox)
    assert [e.scene.name for e in msg.setlist.entries] == ["a", "b"]
    assert (tmp_path / "more").resolve() in {p.parent for p in w.files}
    # the watch that sent it ends after sending (its folders changed) and a new one starts: every
    # yield from now on is the new watch's, so once `ready` is set again more/ is watched
    w.ready.clear()
    assert w.ready.wait(WAIT_S)
    (tmp_path / "more" / "b.toml").write_text(SCENE.format(n=7))
    msg = next_reload(inbox)
    assert msg.file == str((tmp_path / "more" / "b.toml").resolve())
    assert msg.setlist.entries[1].scene.length.lo == 7


def test_lectern_reload_reads_at_once_and_the_engine_gets_the_reply(show):
    tmp_path, w, inbox = show
    assert TABLE["reload"].owner == "runtime" and TABLE["reload"].network
    replies = []
    cmd = validate("/lectern/reload", (), scene_count=1, source="osc", reply=lambda ok, d: replies.append((ok, d)))
    w.request(cmd)
    msg = next_reload(inbox)
    assert msg.source == "osc" and msg.error == "" and msg.reply is not None
    assert msg.file == str(tmp_path / "set.toml")
    msg.reply(True, "x")
    assert replies == [(True, "x")]
    with pytest.raises(queue.Empty):
        inbox.get_nowait()
