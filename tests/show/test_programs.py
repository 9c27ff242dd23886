"""Temperature and seed programs are pure functions: exact values."""

import math

import pytest

from performance.show.programs import SeedProgram, TemperatureProgram
from performance.show.schema import ConfigError, Table


def prog(**kw) -> TemperatureProgram:
    return TemperatureProgram.from_table(Table(kw, "scene.toml", "temperature"))


def test_constant():
    assert prog(program="constant", value=0.7).at(123.0, 9, 4) == 0.7


def test_linear_ramp_over_seconds_then_holds():
    p = prog(program="ramp", **{"from": 0.2, "to": 1.5}, seconds=100)
    assert p.at(0, 0, 0) == 0.2
    assert p.at(50, 0, 0) == pytest.approx(0.85)
    assert p.at(100, 0, 0) == 1.5
    assert p.at(500, 0, 0) == 1.5


def test_ramp_over_poems_hits_both_ends():
    p = prog(program="ramp", **{"from": 0.2, "to": 1.5}, poems=40)
    assert p.at(0, 0, 0) == 0.2
    assert p.at(0, 39, 0) == 1.5
    values = [p.at(0, i, 0) for i in range(40)]
    assert values == sorted(values)


def test_exponential_ramp_is_geometric():
    p = prog(program="ramp", **{"from": 0.25, "to": 1.0}, seconds=10, curve="exponential")
    assert p.at(5, 0, 0) == pytest.approx(0.5)


def test_sine():
    p = prog(program="sine", center=1.0, depth=0.5, period=8)
    assert p.at(2, 0, 0) == pytest.approx(1.5)
    assert p.at(6, 0, 0) == pytest.approx(0.5)
    assert p.at(4, 0, 0) == pytest.approx(1.0 + 0.5 * math.sin(math.pi), abs=1e-6)


def test_random_per_poem_in_range_deterministic_and_varied():
    p = prog(program="random", lo=0.25, hi=1.25)
    vals = [p.at(0, i, 0, salt="s") for i in range(200)]
    assert all(0.25 <= v <= 1.25 for v in vals)
    assert vals == [p.at(99, i, 7, salt="s") for i in range(200)]  # per poem, not per time or token
    assert len(set(vals)) > 150
    assert min(vals) < 0.4 and max(vals) > 1.1


def test_sawtooth_steps_each_poem_and_wraps():
    p = prog(program="sawtooth", lo=0.5, hi=0.8, step=0.1)
    assert [p.at(0, i, 0) for i in range(6)] == [0.5, 0.6, 0.7, 0.8, 0.5, 0.6]


def test_list_cycles_per_token():
    p = prog(program="list", values=[0.1, 0.9, 2.0])
    assert [p.at(0, 0, i) for i in range(5)] == [0.1, 0.9, 2.0, 0.1, 0.9]


def test_bad_values_give_one_line_naming_file_and_key():
    with pytest.raises(ConfigError) as e:
        prog(program="constant", value=7)
    msg = str(e.value)
    assert "\n" not in msg and "scene.toml" in msg and "temperature.value" in msg and "0" in msg and "3" in msg
    with pytest.raises(ConfigError, match="temperature.program"):
        prog(program="wobble")
    with pytest.raises(ConfigError, match="temprature"):
        prog(program="constant", temprature=1)


def test_seed_programs():
    assert SeedProgram("fixed", value=5).at(3, 1) == 5
    lst = SeedProgram("list", values=(4, 8))
    assert [lst.at(i, 1) for i in range(3)] == [4, 8, 4]
    new = SeedProgram("new")
    seeds = [new.at(i, 1) for i in range(50)]
    assert len(set(seeds)) == 50
    assert seeds == [new.at(i, 1) for i in range(50)]
    assert seeds != [new.at(i, 2) for i in range(50)]
