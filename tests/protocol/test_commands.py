"""The one command table: every input validates through it, and every list of commands is made from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from performance.controllers.mapping import BUTTONS, CONTINUOUS
from performance.controllers.osc.help import table_text
from performance.controllers.remote import COMMANDS_FOR_PAGE
from performance.protocol.commands import (
    MAX_PROMPT_CHARS,
    SESSION,
    TABLE,
    CommandError,
    UnknownCommand,
    interpret,
    network_commands,
    validate,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_owner_is_known_and_engine_commands_have_one_handler_each():
    from performance.engine.commands import HANDLERS

    assert {c.owner for c in TABLE.values()} <= {"engine", "runtime", "controller"}
    engine_owned = {n for n, c in TABLE.items() if c.owner == "engine"}
    assert set(HANDLERS) == engine_owned


def test_run_py_osc_and_the_docs_are_printed_from_the_table():
    text = table_text()
    for c in network_commands() + SESSION:
        assert f"/lectern/{c.name} " in text
    for c in TABLE.values():
        if not c.network:
            assert f"/lectern/{c.name} " not in text  # quit, fullscreen, restart never reach the network
    out = subprocess.run([sys.executable, "run.py", "osc"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == text.strip()
    assert text.strip() in (ROOT / "docs" / "controllers.md").read_text(), "docs/controllers.md: paste `run.py osc` again"


def test_midi_and_the_remote_take_their_commands_and_bounds_from_the_table():
    names = {c.name for c in network_commands()}
    assert set(BUTTONS) <= names
    for name, (lo, hi, whole) in CONTINUOUS.items():
        spec = TABLE[name]
        if spec.fader:
            assert (lo, hi) == spec.bounds and not whole
    assert [c["name"] for c in COMMANDS_FOR_PAGE] == [c.name for c in network_commands()]
    for c in COMMANDS_FOR_PAGE:
        if "min" in c:
            assert (c["min"], c["max"]) == TABLE[c["name"]].bounds


@pytest.mark.parametrize("name,value", [("seed", 42.5), ("scene", 1.5), ("neuron", 2.5)])
def test_whole_numbers_are_whole_wherever_they_come_from(name, value):
    for source, network in (("osc", True), ("key", False), ("schedule", False)):
        with pytest.raises(CommandError, match="whole number"):
            validate(name, (value,), scene_count=3, source=source, network=network)


@pytest.mark.parametrize("name", ["temperature", "speed", "volume", "seed", "scene", "neuron", "voice"])
def test_huge_and_unusable_numbers_are_one_line_never_a_traceback(name):
    for v in (10**400, float("nan"), float("inf"), -(10**60)):
        with pytest.raises(CommandError) as e:
            interpret(name, (v,), 3)
        assert "\n" not in str(e.value) and f"/lectern/{name}" in str(e.value)


def test_a_prompt_has_the_scene_files_limit_and_the_network_cannot_quit():
    assert interpret("prompt", ("x" * MAX_PROMPT_CHARS,), 1)[0] == "prompt"
    with pytest.raises(CommandError, match=f"at most {MAX_PROMPT_CHARS}"):
        interpret("prompt", ("x" * (MAX_PROMPT_CHARS + 1),), 1)
    with pytest.raises(UnknownCommand):
        interpret("/lectern/quit", (), 1)
    assert validate("quit", (), scene_count=1, source="key", network=False).name == "quit"


def test_bounds_exist_once():
    from performance.show import programs

    assert programs.MAX_TEMPERATURE == TABLE["temperature"].bounds[1]
    assert interpret("temperature", (7.5,), 1) == ("temperature", (3.0,))
    assert interpret("speed", (0.0,), 1) == ("speed", (0.1,))
