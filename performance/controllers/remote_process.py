"""The phone remote in a process of its own: what a hostile network does to it never holds the show.

The remote is the most exposed surface Lectern has (issue 27). In the show's process, a flood of
sockets, handshakes and crafted frames cost the frame loop its interpreter: the remote's thread
held the GIL, and the garbage its connections left (cycles, thousands a second) made Python's
collector pause every thread for 0.3-1.4 s. Here `RemoteServer` (remote.py, unchanged) runs in a
spawned child; one pipe carries, as small tuples:

  child -> show   ("ready", port, url) | ("error", text) | ("log", level, logger, text)
                  ("cmd", id, name, args, ip, received, fader)   a validated command
                  ("word", id, word, ip, received)   a word from the audience page (audience_page.py)
  show -> child   ("state", dict) | ("scenes", names) | ("reply", id, ok, detail) | ("stop",)
                  ("audience", settings dict | None)   a reloaded setlist's [audience]

The child validates with the one command table (as before); this side turns each command into a
Command on the engine's inbox (a fader's waiting value replaced in place, as in-process) whose
reply goes back down the pipe. Passcode guesses spend the one budget in shared memory
(auth.GuessBudget.share), so the remote, OSC and the console still share ten a minute. If the
child dies, it is started again (same port and token) up to RESTARTS times; the show goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from performance.controllers import auth
from performance.controllers.inbox import put_latest
from performance.controllers.remote_messages import FADERS
from performance.protocol.commands import PREFIX, TABLE, Command
from performance.show.audience_settings import AudienceSettings

log = logging.getLogger("lectern.remote")
START_TIMEOUT_S = 20.0  # a spawned interpreter importing aiohttp on a loaded 2-core machine
RESTARTS = 3
MAX_WAITING_REPLIES = 4096
NICE = 5  # the remote's process yields the cores to the show's (frame loop, worker) when both want them  # commands the engine has not answered yet (older ones are forgotten)


class RemoteProcess:
    """Same face as RemoteServer (start, stop, publish_state, url, token_url, qr_text), served by a
    child process. inbox: the engine's queue; scene_names: called on this side, sent with state."""

    def __init__(self, inbox: queue.Queue, *, host: str = "127.0.0.1", port: int = 8080,
                 passcode: str | None = None, scene_names: Callable[[], list[str]] = list,
                 token: str | None = None, audience: dict | None = None) -> None:
        self.inbox = inbox
        self.audience = audience  # the setlist's [audience] (AudienceSettings.to_dict), None: no audience page
        self.host, self.port, self.passcode = host, port, passcode or None
        self.token = token or auth.new_token()
        self.scene_names = scene_names
        self.url = ""
        self._ctx = multiprocessing.get_context("spawn")  # never fork a process holding torch and SDL
        self._budget = auth.shared_budget().share()
        self._conn: Any = None
        self._proc: Any = None
        self._send_lock = threading.Lock()
        self._state: dict | None = None
        self._scenes: list[str] | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._slots: dict[tuple[str, str], Command] = {}  # (address, fader) -> its value waiting on the inbox
        self.restarts = 0
        self.serving = 0

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn the child and wait until it listens; raises RemoteError (remote.py) if it cannot."""
        self._spawn()
        threading.Thread(target=self._send_loop, name="lectern-remote-tx", daemon=True).start()

    def _spawn(self) -> None:
        from performance.controllers.remote import RemoteError  # lazy: aiohttp's module, only when serving

        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=child_main, name="lectern-remote", daemon=True,
            args=(child, self.host, self.port, self.passcode, self.token, list(self.scene_names()), self._budget,
                  logging.getLogger().getEffectiveLevel(), self.audience))
        self._proc.start()
        child.close()
        if not parent.poll(START_TIMEOUT_S):
            self._proc.kill()
            raise RemoteError(f"the remote's process did not start within {START_TIMEOUT_S:.0f} s")
        try:
            first = parent.recv()
        except EOFError:
            raise RemoteError("the remote's process ended as it started") from None
        if first[0] == "error":
            self._proc.join(2.0)
            raise RemoteError(first[1])
        _, self.port, self.url = first
        self._conn = parent
        self.serving += 1  # how many children have listened so far (1, then 2 after a restart...)
        threading.Thread(target=self._receive_loop, args=(parent,), name="lectern-remote-rx", daemon=True).start()

    def stop(self) -> None:
        """Ask the child to close its sockets; end it if it does not within 3 s."""
        self._stopping.set()
        self._send(("stop",))
        self._wake.set()
        if self._proc is not None:
            self._proc.join(3.0)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(1.0)
            self._proc = None  # it holds the shared budget among its arguments
        auth.shared_budget().unshare()
        self._budget = None

    def set_audience(self, audience: dict | None) -> None:
        """A reloaded setlist's [audience]: the page's server checks words by it from now on (a page
        that was not served at start is not added; without the table, words are closed)."""
        if self.audience is not None and audience != self.audience:
            self.audience = audience or {**self.audience, "words": False}
            self._send(("audience", audience))

    @property
    def audience_url(self) -> str:
        """The audience page's address ("" without an [audience] table)."""
        return f"{self.url}audience" if self.audience is not None and self.url else ""

    @property
    def token_url(self) -> str:
        """The address to give the phone (the page takes the token from the fragment)."""
        return f"{self.url}#token={self.token}"

    def qr_text(self) -> str:
        """The token URL as a QR code for a terminal."""
        from performance.controllers.remote import qr_for  # lazy: segno, only when announced

        return qr_for(self.token_url)

    # ---- state out (any thread, O(1)) ------------------------------------------------------------
    def publish_state(self, state: dict) -> None:
        """Publisher listener: keep the latest snapshot; the sender thread pipes it."""
        self._state = state
        self._wake.set()

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            state, self._state = self._state, None
            names = list(self.scene_names())
            if names != self._scenes:  # a reloaded setlist: the page's scene list follows
                self._scenes = names
                self._send(("scenes", names))
            if state is not None:
                self._send(("state", state))

    def _send(self, msg: tuple) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            with self._send_lock:  # the engine's replies and the sender thread share the pipe
                conn.send(msg)
        except (OSError, ValueError):  # the child is gone: the receive loop restarts it
            pass

    # ---- commands and logs in ----------------------------------------------------------------------
    def _receive_loop(self, conn: Any) -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            try:
                self._handle(msg)
            except Exception as e:  # noqa: BLE001 (one odd message must not end the remote)
                log.error("remote: message from its process refused (%s: %s)", type(e).__name__, e)
        if not self._stopping.is_set():
            self._restart()

    def _handle(self, msg: tuple) -> None:
        if msg[0] == "cmd":
            _, cid, name, args, ip, received, fader = msg
            spec = TABLE.get(name)
            if spec is None or not spec.network:  # the child validates; this side still never takes
                self._send(("reply", cid, False, f"address: unknown command {name[:60]!r}"))  # quit or a word
                return
            self._command(cid, name, tuple(args), ip, received, fader)
        elif msg[0] == "word" and self.audience is not None:
            _, cid, word, ip, received = msg
            self._word(cid, str(word)[:64], str(ip), float(received))
        elif msg[0] == "log":
            _, level, name, text = msg
            logging.getLogger(name).log(level, "%s", text)

    def _command(self, cid: int, name: str, args: tuple, ip: str, received: float, fader: bool) -> None:
        def reply(ok: bool, detail: str) -> None:
            self._send(("reply", cid, ok, detail))

        cmd = Command(f"{PREFIX}/{name}", args, source="remote", sender=(ip, 0), reply=reply, received=received)
        key = (ip, name) if fader else None  # a fader's newer value from that address replaces the waiting one
        old = self._slots.get(key) if key is not None else None
        got = put_latest(self.inbox, cmd, old)
        if got == "full":
            reply(False, "busy: too many commands waiting")
            return
        if got == "replaced" and old is not None and old.reply:
            old.reply(True, "superseded by a newer value")
        if key is not None:
            if len(self._slots) > MAX_WAITING_REPLIES:  # stale entries only cost a missed coalescing
                self._slots.clear()
            self._slots[key] = cmd

    def _word(self, cid: int, word: str, ip: str, received: float) -> None:
        """An audience word: a Command of its own source, which only this path makes (network=False)."""
        def reply(ok: bool, detail: str) -> None:
            self._send(("reply", cid, ok, detail))

        cmd = Command(f"{PREFIX}/audience/word", (word,), source="audience", sender=(ip, 0), reply=reply,
                      received=received)
        if put_latest(self.inbox, cmd, None) == "full":
            reply(False, "busy: try again in a moment")

    def _restart(self) -> None:
        if self._proc is not None:
            self._proc.join(2.0)  # reaped, so the line below can say how it ended
        code = self._proc.exitcode if self._proc is not None else None
        if self.restarts >= RESTARTS:
            log.error("remote: its process ended (exit %s) %d times; the show goes on without the remote",
                      code, self.restarts + 1)
            return
        self.restarts += 1
        log.error("remote: its process ended (exit %s); starting it again (%d of %d)", code, self.restarts, RESTARTS)
        for attempt in range(10):  # the old listener's port may take a moment to come free
            try:
                self._spawn()
                return
            except OSError as e:
                if attempt == 9:
                    log.error("remote: could not start again (%s); the show goes on without the remote", e)
                time.sleep(0.5)


# ---- the child ----------------------------------------------------------------------------------
class _PipeLog(logging.Handler):
    """The child's log lines, sent to the show, which logs them where its own lines go."""

    def __init__(self, send: Callable[[tuple], None]) -> None:
        super().__init__()
        self._send_msg = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._send_msg(("log", record.levelno, record.name, record.getMessage()))
        except Exception:  # noqa: BLE001 (a log line must never take the remote down)
            pass


class _PipeInbox(queue.Queue):
    """What RemoteServer puts on "the inbox" goes down the pipe instead; the show answers each
    command by its id, and the answer is handed to the command's own reply here."""

    def __init__(self, send: Callable[[tuple], None]) -> None:
        super().__init__()
        self._send_msg = send
        self._next = 0
        self._lock = threading.Lock()
        self.replies: OrderedDict[int, Callable[[bool, str], None]] = OrderedDict()

    def put_nowait(self, cmd: Command) -> None:  # put_latest's way in: nothing is kept here
        with self._lock:
            self._next += 1
            cid = self._next
            if cmd.reply is not None:
                self.replies[cid] = cmd.reply
                while len(self.replies) > MAX_WAITING_REPLIES:
                    self.replies.popitem(last=False)
        name = cmd.name
        self._send_msg(("cmd", cid, name, list(cmd.args), cmd.sender[0] if cmd.sender else "?", cmd.received,
                        name in FADERS))

    def put_word(self, word: str, ip: str, reply: Callable[[bool, str], None]) -> None:
        """An audience word (audience_page.py): up the pipe as ("word", ...), answered like a command."""
        with self._lock:
            self._next += 1
            cid = self._next
            self.replies[cid] = reply
            while len(self.replies) > MAX_WAITING_REPLIES:
                self.replies.popitem(last=False)
        self._send_msg(("word", cid, word, ip, time.monotonic()))

    def answer(self, cid: int, ok: bool, detail: str) -> None:
        with self._lock:
            reply = self.replies.pop(cid, None)
        if reply is not None:
            reply(ok, detail)


def child_main(conn: Any, host: str, port: int, passcode: str | None, token: str, scenes: list[str],
               budget: Any, level: int, audience: dict | None = None) -> None:
    """The remote's process: serve until told to stop or the show's end of the pipe closes."""
    from performance.controllers.remote import RemoteServer  # lazy: this process's whole purpose

    try:  # under a flood the stage's cores come first; the phone still gets in (the abuse bench)
        os.nice(NICE)
    except OSError:
        pass
    lock = threading.Lock()

    def send(msg: tuple) -> None:
        with lock:
            conn.send(msg)

    root = logging.getLogger()
    root.handlers[:] = [_PipeLog(send)]
    root.setLevel(level)
    names = list(scenes)
    inbox = _PipeInbox(send)
    server = RemoteServer(inbox, host=host, port=port, passcode=passcode, scene_names=lambda: names, token=token,
                          budget=auth.GuessBudget(spent=budget),
                          audience=AudienceSettings.from_dict(audience) if audience is not None else None)
    try:
        server.start()
    except OSError as e:
        send(("error", str(e)))
        return
    send(("ready", server.port, server.url))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        if msg[0] == "state":
            server.publish_state(msg[1])
        elif msg[0] == "reply":
            inbox.answer(msg[1], msg[2], msg[3])
        elif msg[0] == "scenes":
            names[:] = msg[1]
        elif msg[0] == "audience" and server.audience is not None:
            server.audience.retune(AudienceSettings.from_dict(msg[1]) if msg[1] is not None else None)
        elif msg[0] == "stop":
            break
    server.stop()
