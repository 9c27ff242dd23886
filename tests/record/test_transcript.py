"""Transcripts: contract names, every poem in .txt and .jsonl, keep → harvest.txt."""

from __future__ import annotations

import json
import re
from datetime import datetime

from conftest import script_loader

from performance.protocol.actions import Keep
from performance.protocol.commands import Command
from performance.record.transcript import TranscriptWriter, read_events
from performance.show.config import load_setlist
from performance.simulate import simulate


def test_transcript_holds_every_poem_and_parses(tmp_path):
    (tmp_path / "set.toml").write_text("""
name = "my set: one"
[[scene]]
model = "x"
poems = 6
length = { lines = 3 }
pacing = { reveal = "words", rate = 20, hold = 0.5 }
""")
    setlist = load_setlist(tmp_path / "set.toml")
    writer = TranscriptWriter(tmp_path / "out", setlist.name, datetime(2026, 11, 22, 20, 15, 3))
    writer.start()
    keeps = []

    def route(now, out):
        for ev in out.events:
            writer.write(ev)
        for f in out.files:
            if isinstance(f, Keep):
                keeps.append(f)
                writer.keep(f.text, f.footer)

    events = simulate(setlist, 60, loader=script_loader, on_outbox=route,
                      commands=[(2.0, Command("/lectern/keep", source="osc"))])
    writer.close()
    assert writer.jsonl_path.name == "generated-2026-11-22T20-15-03_my-set-one.jsonl"
    assert writer.txt_path.name == "generated-2026-11-22T20-15-03_my-set-one.txt"
    assert ":" not in writer.jsonl_path.name
    parsed = read_events(writer.jsonl_path)
    assert len(parsed) == len(events)
    assert all({"t", "wall", "event"} <= set(e) for e in parsed)
    assert parsed[0]["event"] == "session_start" and parsed[-1]["event"] == "session_end"
    assert datetime.fromisoformat(parsed[0]["wall"]) == datetime(2026, 11, 22, 20, 15, 3)
    poems = [e for e in parsed if e["event"] == "poem_end"]
    assert len(poems) == 6
    # tokens rebuild each poem exactly
    for p in poems:
        text = "".join(e["text"] for e in parsed if e["event"] == "token" and e["poem"] == p["n"])
        assert text.strip() == p["text"]
        assert all("temperature" in e and 0 < e["p"] <= 1 for e in parsed if e["event"] == "token")
    txt = writer.txt_path.read_text()
    for p in poems:
        assert p["text"] in txt
    assert len(re.findall(r"— x · temperature [0-9.]+ · seed \d+", txt)) == 6
    harvest = (tmp_path / "out" / "harvest.txt").read_text()
    assert len(keeps) == 1 and keeps[0].text in harvest
    kept = [e for e in parsed if e["event"] == "keep"]
    showing = max(e["n"] for e in parsed if e["event"] == "poem_start" and e["t"] <= 2.0)
    assert kept and kept[0]["poem"] == showing
    json.dumps(parsed)  # everything is plain JSON
