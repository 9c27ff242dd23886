"""Keys become the same Commands as OSC; Esc is panic, never quit."""

from __future__ import annotations

import pygame
from conftest import script_loader  # noqa: F401  (sets SDL to dummy)

from performance.controllers.keyboard import command_for_key as key_command
from performance.engine import Engine
from performance.runtime.publisher import compose
from performance.show.config import load_setlist


def command_for_key(key, engine):
    """The keyboard reads the state Snapshot, as the publisher builds it from the engine."""
    return key_command(key, compose(engine.snapshot()))


def engine(tmp_path) -> Engine:
    (tmp_path / "s.toml").write_text('[[scene]]\nmodel = "x"\ntemperature = { program = "constant", value = 0.8 }\n')
    e = Engine(load_setlist(tmp_path / "s.toml"), session_seed=1)
    e.start(0.0)
    return e


def test_keys_map_to_contract_addresses(tmp_path):
    e = engine(tmp_path)
    expect = {pygame.K_SPACE: "/lectern/go", pygame.K_b: "/lectern/back", pygame.K_ESCAPE: "/lectern/panic",
              pygame.K_0: "/lectern/temperature/release", pygame.K_r: "/lectern/reseed",
              pygame.K_k: "/lectern/keep", pygame.K_c: "/lectern/caption", pygame.K_p: "/lectern/pause"}
    for key, address in expect.items():
        cmd = command_for_key(key, e)
        assert cmd is not None and cmd.address == address and cmd.source == "key"
    assert command_for_key(pygame.K_q, e) is None


def test_arrows_step_the_override_from_the_current_temperature(tmp_path):
    e = engine(tmp_path)
    e.current_temperature = 0.8
    up = command_for_key(pygame.K_UP, e)
    assert up.address == "/lectern/temperature" and up.args == (0.9,)
    e.step(0.1, [up])
    assert e.override == 0.9
    down = command_for_key(pygame.K_DOWN, e)
    assert down.args == (0.8,)
    e.override = 0.05
    assert command_for_key(pygame.K_DOWN, e).args == (0.0,)


def test_p_toggles_pause_and_resume(tmp_path):
    e = engine(tmp_path)
    e.step(0.1, [command_for_key(pygame.K_p, e)])
    assert e.paused
    assert command_for_key(pygame.K_p, e).address == "/lectern/resume"
