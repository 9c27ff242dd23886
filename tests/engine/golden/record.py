"""Golden transcripts: the demo, the ELO 2015 set and the gallery loop under the fake clock.

`python tests/engine/golden/record.py` writes them (only when behaviour is meant to change: say why in
the commit); tests/engine/test_golden.py replays them and compares event for event. The script
model stands in for every kind, so the figures do not depend on a CPU's float rounding; the
commands exercise every engine-owned command at fixed times.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # conftest: the script model

# (setlist, engine seconds, step, commands as (t, address, args))
CASES = {
    "demo": ("setlists/demo.toml", 240.0, 1 / 30, [
        (3.0, "/lectern/temperature", (1.4,)), (5.0, "/lectern/temperature/release", ()),
        (9.0, "/lectern/seed", (42,)), (12.0, "/lectern/reseed", ()), (15.0, "/lectern/pause", ()),
        (17.5, "/lectern/resume", ()), (20.0, "/lectern/speed", (2.5,)), (22.0, "/lectern/voice", (0,)),
        (23.0, "/lectern/volume", (0.4,)), (24.0, "/lectern/sonify", (0,)), (26.0, "/lectern/keep", ()),
        (27.0, "/lectern/caption", ()), (28.0, "/lectern/model", ("markov",)), (31.0, "/lectern/prompt", ("the sea",)),
        (34.0, "/lectern/model/release", ()), (35.0, "/lectern/prompt/release", ()), (36.0, "/lectern/go", ()),
        (36.2, "/lectern/go", ()), (50.0, "/lectern/back", ()), (60.0, "/lectern/scene", ("vintages",)),
        (70.0, "/lectern/neuron", (3,)), (80.0, "/lectern/panic", ()), (84.0, "/lectern/go", ()),
        (90.0, "/lectern/blackout", ()), (93.0, "/lectern/resume", ()), (95.0, "/lectern/scene", (2,)),
        (96.0, "/lectern/speed", (1.0,)), (97.0, "/lectern/nonsense", ()),
    ]),
    "elo2015": ("setlists/elo2015.toml", 3000.0, 0.25, [(400.0, "/lectern/temperature", (0.9,))]),
    "gallery": ("setlists/gallery.toml", 1800.0, 0.25, [(900.0, "/lectern/scene", ("chime",))]),
}


def run_case(name: str) -> list[dict]:
    """The event list of one golden case, as plain JSON values."""
    from conftest import script_loader

    from performance.protocol.commands import Command
    from performance.show.config import load_setlist
    from performance.simulate import simulate

    path, until, dt, cmds = CASES[name]
    setlist = load_setlist(ROOT / path)
    commands = [(t, Command(a, tuple(args), source="osc")) for t, a, args in cmds]
    events = simulate(setlist, until, dt=dt, session_seed=7, loader=script_loader, commands=commands)
    # paths relative to the checkout, so the golden files hold wherever the repository lies
    text = json.dumps(events).replace(json.dumps(str(ROOT) + "/")[1:-1], "")
    return json.loads(text)


def golden_path(name: str) -> Path:
    return HERE / f"{name}.jsonl"


def main() -> None:
    for name in CASES:
        events = run_case(name)
        golden_path(name).write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in events))
        print(f"{name}: {len(events)} events")


if __name__ == "__main__":
    main()
