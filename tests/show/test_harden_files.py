"""Hardening of what is read from disk and the command line: NaN/inf, huge, deep, binary (issue 20)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from performance.cli import build_parser
from performance.show.config import load_scene, load_setlist
from performance.show.schema import ConfigError
from performance.textgen.base import ModelFileError
from performance.textgen.cards import read_card

BASE = 'model = "markov"\nlength = { words = 20 }\n'


@pytest.mark.parametrize("extra", [
    "[look]\nmargin = nan\n", "[pacing]\npause_seconds = inf\npause_every = 2\n", "[pacing]\nrate = nan\n",
    "[pacing]\nhold = nan\n", "[pacing]\nhold = inf\n", "duration = nan\n", "duration = inf\n",
    'temperature = { program = "constant", value = nan }\n', 'temperature = { program = "list", values = [0.5, nan] }\n',
    "[pacing]\nhold = 1e300\n", "length = { words = 1000000000000 }\n",
])
def test_non_finite_and_unbounded_numbers_are_one_line_errors(tmp_path, extra):
    p = tmp_path / "s.toml"
    text = BASE + extra if not extra.startswith("length") else 'model = "markov"\n' + extra
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_scene(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


@pytest.mark.parametrize("argv", [
    ["--osc-port", "70000"], ["--time-scale", "nan"], ["--time-scale", "inf"], ["--duration", "nan"],
    ["--duration", "-1"], ["--osc-passcode", ""], ["--osc-rate", "inf"], ["--seed", "-3"],
])
def test_bad_command_line_numbers_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["play", "x.toml", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert argv[0] in err


def deep(n: int, kind: str) -> str:
    return ("x = " + "[" * n + "]" * n + "\n") if kind == "toml" else ("[" * n + "]" * n)


def test_deep_toml_json_and_device_files_are_one_line_errors(tmp_path):
    p = tmp_path / "deep.toml"
    p.write_text(deep(5000, "toml"))
    with pytest.raises(ConfigError, match="nested more than"):
        load_scene(p)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_scene("/dev/zero")
    b = tmp_path / "bin.toml"
    b.write_bytes(b"\x00\xff" * 100)
    with pytest.raises(ConfigError, match="binary"):
        load_setlist(b)
    for name, text, what in (("deep", deep(5000, "json"), "nested more than"), ("list", "[1, 2]", "JSON object")):
        d = tmp_path / name
        d.mkdir()
        (d / "model.json").write_text(text)
        with pytest.raises(ModelFileError, match=what):
            read_card(d)
    bl = tmp_path / "bl.toml"
    bl.write_text(BASE + '[blocklist]\nfile = "/dev/zero"\n')
    with pytest.raises(ConfigError, match="blocklist.file"):
        load_scene(bl)


def test_check_rejects_each_bad_file_with_one_line(tmp_path):
    bad = tmp_path / "nan.toml"
    bad.write_text(BASE + "[look]\nmargin = nan\n")
    card = tmp_path / "m"
    card.mkdir()
    (card / "model.json").write_text(json.dumps([1]))
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "check", str(bad), "/dev/zero", str(card)],
                       capture_output=True, text=True, timeout=120)
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 3 and all(ln.startswith("error ") for ln in lines), r.stdout + r.stderr


def corrupt_font(tmp_path):
    src = (ROOT / "assets/fonts/DejaVuSans.ttf").read_bytes()
    b = bytearray(src)
    for i in range(12, 2000, 7):
        b[i] = (b[i] * 31 + 7) % 256
    p = tmp_path / "broken.ttf"
    p.write_bytes(bytes(b))
    return p


def test_a_corrupt_font_is_refused_by_check_and_never_drawn(tmp_path):
    font = corrupt_font(tmp_path)
    scene = tmp_path / "s.toml"
    scene.write_text(BASE + f'[look]\nfont = "{font}"\n')
    with pytest.raises(ConfigError, match="look.font.*this font"):
        load_scene(scene)
    from performance.stage.fonts import FALLBACK_FONT, Fonts

    fonts = Fonts()  # at draw time (a transcript re-render takes the font as written): the fallback
    assert fonts.get(font, 30).render("abc", True, (255, 255, 255)).get_width() > 0
    assert fonts.path(font) == str(FALLBACK_FONT)


def test_check_validates_the_safe_setlist_and_the_supervisor_finds_the_setlist_after_any_option(tmp_path):
    main = tmp_path / "main.toml"
    main.write_text('[[scene]]\nmodel = "markov"\nlength = { words = 5 }\n\n[install]\nsafe_setlist = "setlists/saef.toml"\n')
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "check", str(main)], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 1 and "install.safe_setlist" in r.stdout and "saef" in r.stdout, r.stdout
    from performance.install.supervisor import play_command, with_setlist

    argv = play_command(["play", "--install", "--osc-rate", "50", "--osc-passcode=x", str(main)])
    assert with_setlist(argv, "safe.toml")[-1] == "safe.toml" and "50" in with_setlist(argv, "safe.toml")


def test_when_the_safe_setlist_fails_too_the_still_screen_is_shown(tmp_path):
    from performance.install.supervisor import STILL, supervise

    safe = tmp_path / "quiet.toml"
    main = tmp_path / "main.toml"
    main.write_text(f'[[scene]]\nmodel = "markov"\n\n[install]\nsafe_setlist = "{safe}"\n')
    log = tmp_path / "runs"
    prog = ("import os, sys\nopen(sys.argv[1], 'a').write(sys.argv[2] + ' ')\n"
            f"sys.exit(0 if sys.argv[2] == {STILL!r} else 1)")
    supervise(["play", str(main)], child=[sys.executable, "-c", prog, str(log), "{setlist}"], state_dir=tmp_path,
              max_crashes=2, sleep=lambda s: None)
    runs = log.read_text().split()
    assert runs == [str(main), str(main), str(safe), str(safe), STILL]


def test_the_still_screen_runs_headless_and_beats(tmp_path):
    import os
    import signal
    import time

    beat = tmp_path / "beat"
    proc = subprocess.Popen([sys.executable, "-m", "performance.install.still", "x.toml", "--headless"], cwd=ROOT,
                            env={**os.environ, "LECTERN_HEARTBEAT": str(beat)})
    try:
        t0 = time.monotonic()
        while not beat.exists() and time.monotonic() - t0 < 30:
            time.sleep(0.1)
        assert beat.exists()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_finite_ranges_still_take_every_real_seed(tmp_path):
    p = tmp_path / "set.toml"
    p.write_text('seed = 2147483647\n[[scene]]\nmodel = "markov"\nlength = { words = 5 }\n'
                 'seed = { program = "list", values = [2147483647, 3] }\n')
    assert load_setlist(p).seed == 2147483647
