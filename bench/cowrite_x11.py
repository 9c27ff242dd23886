"""Co-writing on a real X server, picked by hand from the outside (issue 31 item 3's check).

Plays setlists/cowrite.toml in a real window (SDL x11) with OSC, the phone remote, a MIDI
controller (a JACK MIDI client made here, on a private jackd) and a recording; watches the remote's
WebSocket state and, at every offer (every fifth word), picks a candidate in turn from the remote,
a MIDI pad and `oscsend`; takes X screenshots while candidates show; then reads the transcript and
prints one JSON object: the picks made, the picks the transcript marks, the chosen words found in
the poems' text, the recording's duration.

    DISPLAY=:74 .venv/bin/python bench/cowrite_x11.py --seconds 70 --out /tmp/cowrite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from performance.record.transcript import chosen_words, read_events  # noqa: E402

PAD = "cowrite pads"
FIRST_NOTE = 36  # assets/controllers/cowrite-pads.toml: notes 36..40 pick candidates 1..5


def start_jack(name: str) -> subprocess.Popen:
    proc = subprocess.Popen([shutil.which("jackd") or "jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r",
                             "48000", "-p", "1024"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    return proc


async def drive(url: str, osc_port: int, midi_out, out: Path, seconds: float) -> list[dict]:
    """Watch the remote's state; at each new offer pick from remote, MIDI, OSC in turn."""
    import aiohttp

    base = re.match(r"(https?://[^/]+)", url).group(1)
    ws_url = base.replace("http", "ws", 1) + "/ws?token=" + re.search(r"token=([^&\s]+)", url).group(1)
    picks: list[dict] = []
    seen: tuple = ()
    shots = 0
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession() as s, s.ws_connect(ws_url, headers={"Origin": base}) as ws:
        while time.monotonic() < end:
            try:
                m = await ws.receive(timeout=1.0)
            except TimeoutError:
                continue
            if m.type != aiohttp.WSMsgType.TEXT:
                break
            msg = json.loads(m.data)
            if msg.get("type") != "state":
                continue
            offer = tuple(msg["state"].get("offer") or ())
            if not offer or offer == seen:
                seen = offer if offer else seen
                continue
            seen = offer
            await asyncio.sleep(0.8)  # the strip is on stage: the screenshot shows it
            if shots < 3:
                shot = out / f"offer-{shots + 1}.png"
                subprocess.run(["import", "-window", "root", "-display", os.environ["DISPLAY"], str(shot)], check=False)
                shots += 1
            how = ("remote", "midi", "osc")[len(picks) % 3]
            n = 1 + len(picks) % len(offer)
            if how == "remote":
                await ws.send_str(json.dumps({"type": "command", "address": "/lectern/choose", "args": [n], "id": len(picks)}))
            elif how == "midi":
                midi_out.send_message([0x90, FIRST_NOTE + n - 1, 100])
                await asyncio.sleep(0.05)
                midi_out.send_message([0x80, FIRST_NOTE + n - 1, 0])
            else:
                subprocess.run(["oscsend", "127.0.0.1", str(osc_port), "/lectern/choose", "i", str(n)], check=False)
            picks.append({"by": how, "n": n, "word": offer[n - 1], "offer": list(offer)})
            if len(picks) == 2:  # the poem right after a pick: the chosen word is on screen
                await asyncio.sleep(1.5)
                subprocess.run(["import", "-window", "root", "-display", os.environ["DISPLAY"],
                                str(out / "after-pick.png")], check=False)
    return picks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=70.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/cowrite-x11"))
    ap.add_argument("--osc-port", type=int, default=19031)
    ap.add_argument("--remote-port", type=int, default=18031)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    jack_name = f"lectern-cowrite-{os.getpid()}"
    os.environ["JACK_DEFAULT_SERVER"] = jack_name
    os.environ.setdefault("JACK_NO_AUDIO_RESERVATION", "1")
    jack = start_jack(jack_name)
    import rtmidi

    midi_out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="pads")
    midi_out.open_virtual_port(PAD)
    env = {**os.environ, "SDL_VIDEODRIVER": "x11", "SDL_AUDIODRIVER": "dummy"}
    cmd = [sys.executable, "run.py", "play", "setlists/cowrite.toml", "--window", "1280x720",
           "--duration", str(a.seconds + 4), "--osc-port", str(a.osc_port), "--remote", str(a.remote_port),
           "--midi", PAD, "--midi-map", "assets/controllers/cowrite-pads.toml",
           "--transcript-dir", str(a.out / "sessions"), "--record", str(a.out / "cowrite.mp4"),
           "--screenshot", str(a.out / "last.png")]
    play = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, log = None, []
    deadline = time.monotonic() + 60
    while url is None and time.monotonic() < deadline:
        line = play.stdout.readline()
        if not line:
            break
        log.append(line)
        m = re.search(r"remote: open (\S+token=\S+)", line)
        url = m.group(1) if m else None
    picks: list[dict] = []
    try:
        if url is None:
            raise SystemExit("no remote link in the show's output:\n" + "".join(log[-30:]))
        picks = asyncio.run(drive(url, a.osc_port, midi_out, a.out, a.seconds))
        rest, _ = play.communicate(timeout=120)
        log.append(rest)
    finally:
        if play.poll() is None:
            play.terminate()
        midi_out.close_port()
        jack.terminate()
    (a.out / "play.log").write_text("".join(log))
    events = read_events(next((a.out / "sessions").glob("generated-*.jsonl")))
    marked = chosen_words(events)
    poems = [e["text"] for e in events if e["event"] == "poem_end"]
    dur = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                          str(a.out / "cowrite.mp4")], capture_output=True, text=True).stdout.strip()
    print(json.dumps({"picks": picks, "marked": marked,
                      "marked_in_poems": sum(1 for _, w, _ in marked if any(w in p for p in poems)),
                      "offers": sum(1 for e in events if e["event"] == "choice_offer"),
                      "model_stood": sum(1 for e in events if e["event"] == "choice" and e["by"] == "model"),
                      "poems": poems, "recording_s": float(dur) if dur else None, "returncode": play.returncode},
                     indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
