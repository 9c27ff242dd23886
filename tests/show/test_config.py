"""Scene and setlist files: validated at load, one clear line per error; `run.py check`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from performance.show.config import load_scene, load_setlist
from performance.show.schema import ConfigError


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    ("body", "must_name"),
    [
        ('layout = "spiral"', ["layout", "'spiral'", "stream", "columns"]),
        ("length = { words = 0 }", ["length.words", "0", ">= 1"]),
        ("length = { words = 10, lines = 2 }", ["length", "exactly one"]),
        ('temperature = { program = "constant", value = "hot" }', ["temperature.value", "'hot'", "number"]),
        ("pacing = { rate = -1 }", ["pacing.rate", "-1"]),
        ("pacing = { pause_every = 5 }", ["pacing.pause_seconds", "> 0"]),
        ("poemz = 4", ["poemz", "unknown key"]),
        ('models = ["a", "b"]', ["models", "columns"]),
        ("[seed]\nprogram = \"list\"\nvalues = []", ["seed.values"]),
    ],
)
def test_broken_scene_gives_one_line_naming_file_key_value(tmp_path, body, must_name):
    p = tmp_path / "broken.toml"
    p.write_text(body + "\n")
    with pytest.raises(ConfigError) as e:
        load_scene(p)
    msg = one_line(e)
    assert str(p) in msg
    for piece in must_name:
        assert piece in msg, (piece, msg)


def test_not_toml_and_missing_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("layout = \n")
    with pytest.raises(ConfigError) as e:
        load_scene(p)
    assert "not valid TOML" in one_line(e)
    with pytest.raises(ConfigError) as e:
        load_scene(tmp_path / "nope.toml")
    assert "not found" in one_line(e)


def test_setlist_entry_overrides_merge_onto_the_scene_file(tmp_path):
    (tmp_path / "s.toml").write_text('layout = "reader"\nmodel = "m"\npacing = { rate = 3, hold = 7 }\n')
    (tmp_path / "set.toml").write_text('[[scene]]\nfile = "s.toml"\nduration = 9\npacing = { hold = 1 }\nadvance = "go"\n')
    sl = load_setlist(tmp_path / "set.toml")
    sc = sl.entries[0].scene
    assert sc.layout == "reader" and sc.duration == 9
    assert sc.pacing.rate == 3 and sc.pacing.hold == 1
    assert sl.entries[0].advance == "go"


def test_setlist_errors_name_the_entry(tmp_path):
    (tmp_path / "set.toml").write_text('[[scene]]\nfile = "missing.toml"\n')
    with pytest.raises(ConfigError) as e:
        load_setlist(tmp_path / "set.toml")
    assert "missing.toml" in one_line(e) and "not found" in str(e.value)
    (tmp_path / "set2.toml").write_text('name = "x"\n')
    with pytest.raises(ConfigError, match=r"\[\[scene\]\]"):
        load_setlist(tmp_path / "set2.toml")
    (tmp_path / "set3.toml").write_text('[[scene]]\nmodel = "m"\nadvance = "later"\n')
    with pytest.raises(ConfigError) as e:
        load_setlist(tmp_path / "set3.toml")
    assert "scene[1].advance" in one_line(e)


def run_check(*paths) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", "check", *map(str, paths)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_check_command_exit_codes(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('layout = "spiral"\n')
    r = run_check(bad)
    assert r.returncode == 1
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and "layout" in lines[0] and str(bad) in lines[0]


def test_every_shipped_scene_and_setlist_passes_check():
    paths = sorted((ROOT / "scenes").glob("*.toml")) + sorted((ROOT / "setlists").glob("*.toml"))
    assert len(paths) >= 12
    r = run_check(*paths)
    assert r.returncode == 0, r.stdout + r.stderr


def test_cue_timing_keys_in_a_scene_file_or_a_setlist_entry(tmp_path):
    (tmp_path / "s.toml").write_text('model = "m"\npre_wait = 2.5\ncontinue = "auto-continue"\n')
    (tmp_path / "set.toml").write_text('[[scene]]\nfile = "s.toml"\npost_wait = 4\n'
                                       '[[scene]]\nmodel = "m"\nadvance = "go"\n[[scene]]\nmodel = "m"\n')
    sl = load_setlist(tmp_path / "set.toml")
    first = sl.entries[0]
    assert (first.scene.pre_wait, first.scene.post_wait, first.cont) == (2.5, 4.0, "auto-continue")
    assert (sl.entries[1].cont, sl.entries[1].advance) == ("no", "go")  # the older key, mapped
    assert (sl.entries[2].cont, sl.entries[2].advance) == ("auto-follow", "follow")  # as a setlist always did


@pytest.mark.parametrize("entry, key, allowed", [
    ('continue = "later"', "scene[1].continue", "allowed: no, auto-continue, auto-follow"),
    ("pre_wait = -1", "scene[1].pre_wait", "must be a number"),
    ('post_wait = "5"', "scene[1].post_wait", "must be a number"),
    ('continue = "no"\npost_wait = 3', "scene[1].post_wait", 'only with continue = "auto-continue" or "auto-follow"'),
    ('advance = "go"\npost_wait = 3', "scene[1].post_wait", 'only with continue = "auto-continue" or "auto-follow"'),
    ('advance = "go"\ncontinue = "no"', "scene[1].advance", "give either advance or continue"),
    ("pre_wiat = 2", "pre_wiat", "unknown key"),
])
def test_cue_timing_errors_are_one_line_naming_file_key_value(tmp_path, entry, key, allowed):
    (tmp_path / "set.toml").write_text(f'[[scene]]\nmodel = "m"\n{entry}\n')
    with pytest.raises(ConfigError) as e:
        load_setlist(tmp_path / "set.toml")
    line = one_line(e)
    assert "set.toml" in line and key.split(".")[-1] in line and allowed in line
